"""Word pools the templates draw names and values from (plain lowercase words, no apostrophes)."""

PEOPLE = ("ann", "bob", "cleo", "dev", "emma", "farid", "gus", "hana", "ivan", "jo", "kai", "lena", "milo", "nora")
TEAMS = ("red", "blue", "green", "gold")
ITEMS = ("apple", "bread", "cheese", "lamp", "pencil", "rope", "soap", "tea", "towel", "wax")
WORDS = ("goodbye", "farewell", "welcome", "thanks", "done", "ready", "cheers", "later")
GREETINGS = ("hello", "hi there", "good morning", "hey", "greetings")
COLOURS = ("amber", "teal", "violet", "olive", "coral", "navy")
TITLE_WORDS = ("quiet", "river", "small", "garden", "night", "paper", "stone", "winter", "open", "road", "north", "light")
