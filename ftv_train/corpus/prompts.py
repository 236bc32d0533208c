"""Public-domain prompt sentences spoken by the offline corpus's synthetic speakers.

Why these: both sets were written to cover English phonetics with short, well-formed sentences, and both are free
to redistribute, so the corpus can be rebuilt anywhere.

- ``HARVARD``: the Harvard sentences, lists 1-6 of the 72 phonetically balanced lists in "IEEE Recommended Practice
  for Speech Quality Measurements", IEEE Transactions on Audio and Electroacoustics 17(3), 1969 (appendix);
  public domain (US Government-funded work, widely republished).
- ``ARCTIC``: the first sixteen prompts of the CMU ARCTIC set, ``arctic_a0001`` to ``arctic_a0016`` (Kominek &
  Black, "The CMU Arctic speech databases", SSW5 2004; selected from public-domain Project Gutenberg novels; the
  ARCTIC distribution carries a free, BSD-style licence), checked word for word against ``cmuarctic.data``.
"""

from __future__ import annotations

__all__ = ["ARCTIC", "HARVARD", "PROMPTS"]

HARVARD: tuple[str, ...] = (
    # list 1
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    # list 2
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    # list 3
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    # list 4
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
    "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.",
    "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.",
    "What joy there is in living.",
    # list 5
    "A king ruled the state in the early days.",
    "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.",
    "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.",
    "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.",
    "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.",
    "Mesh wire keeps chicks inside.",
    # list 6
    "The frosty air passed through the coat.",
    "The crooked maze failed to fool the mouse.",
    "Adding fast leads to wrong sums.",
    "The show was a flop from the very start.",
    "A saw is a tool used for making boards.",
    "The wagon moved on well oiled wheels.",
    "March the soldiers past the next hill.",
    "A cup of sugar makes sweet fudge.",
    "Place a rosebush near the porch steps.",
    "Both lost their lives in the raging storm.",
)

ARCTIC: tuple[str, ...] = (
    "Author of the danger trail, Philip Steels, etc.",
    "Not at this particular case, Tom, apologized Whittemore.",
    "For the twentieth time that evening the two men shook hands.",
    "Lord, but I'm glad to see you again, Phil.",
    "Will we ever forget it.",
    "God bless 'em, I hope I'll go on seeing them forever.",
    "And you always want to see it in the superlative degree.",
    "Gad, your letter came just in time.",
    "He turned sharply, and faced Gregson across the table.",
    "I'm playing a single hand in what looks like a losing game.",
    "If I ever needed a fighter in my life I need one now.",
    "Gregson shoved back his chair and rose to his feet.",
    "He was a head shorter than his companion, of almost delicate physique.",
    "Now you're coming down to business, Phil, he exclaimed.",
    "It's the aurora borealis.",
    "There's Fort Churchill, a rifle-shot beyond the ridge, asleep.",
)

PROMPTS: tuple[str, ...] = HARVARD + ARCTIC
