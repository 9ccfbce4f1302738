"""The sentences of the synthetic corpus: SLURP-like intent templates and their slot fillers.

``make_sentence(scenario, rng)`` draws one sentence of a scenario (the intent label of
the corpus): a template of ``SCENARIOS[scenario]`` with its ``{slot}`` placeholders
filled from ``SLOTS`` (no filler used twice in a sentence), sometimes with a prefix
("HEY") or "PLEASE". Pure data and a pure function of the random generator.
"""

import random
import re
from typing import Dict, Tuple

# Templates end with "?" for questions (spoken with a question intonation; the
# transcript has no punctuation). Slots in braces are filled from SLOTS.
SCENARIOS: Dict[str, Tuple[str, ...]] = {
    "alarm": (
        "SET AN ALARM FOR {time} {day}", "WAKE ME UP AT {time} {day}",
        "SET AN ALARM FOR {time}", "CANCEL MY {time} ALARM",
        "REMOVE THE ALARM FOR {day}", "WHAT ALARMS DO I HAVE {day}?",
        "SNOOZE THE ALARM FOR {minutes} MINUTES", "IS MY ALARM SET FOR {time}?",
        "CHANGE MY ALARM TO {time}",
    ),
    "weather": (
        "WHAT IS THE WEATHER LIKE IN {city} {day}?", "WILL IT RAIN {day}?",
        "DO I NEED AN UMBRELLA {day}?", "HOW HOT WILL IT BE IN {city} {day}?",
        "IS IT GOING TO SNOW IN {city}?", "TELL ME THE FORECAST FOR {city}",
        "HOW COLD IS IT OUTSIDE RIGHT NOW?", "WILL IT BE SUNNY IN {city} {day}?",
    ),
    "music": (
        "PLAY SOME {genre} MUSIC", "PLAY SOME {genre} IN THE {room}",
        "PUT ON MY {playlist} PLAYLIST", "SKIP THIS SONG", "TURN THE MUSIC UP A LITTLE",
        "WHO SINGS THIS SONG?", "SHUFFLE MY {playlist} PLAYLIST",
        "PLAY THE LATEST ALBUM BY {artist}", "PLAY SOMETHING BY {artist}",
    ),
    "calendar": (
        "ADD A MEETING WITH {person} {day} AT {time}", "WHAT IS ON MY CALENDAR {day}?",
        "REMIND ME TO {task} {day}", "CANCEL MY {event} {day}",
        "WHEN IS MY NEXT {event}?", "SCHEDULE A {event} WITH {person} {day}",
        "DO I HAVE ANYTHING PLANNED {day}?", "MOVE MY {event} TO {time}",
    ),
    "iot": (
        "TURN {onoff} THE LIGHTS IN THE {room}", "DIM THE LIGHTS IN THE {room}",
        "MAKE THE LIGHTS {colour}", "SET THE THERMOSTAT TO {degrees} DEGREES",
        "TURN {onoff} THE {device}", "SWITCH {onoff} THE {device} IN THE {room}",
        "MAKE IT BRIGHTER IN THE {room}", "START THE ROBOT VACUUM IN THE {room}",
        "IS THE {device} STILL ON?", "LOCK THE FRONT DOOR",
    ),
    "transport": (
        "BOOK A TAXI TO {place} AT {time}", "WHEN IS THE NEXT TRAIN TO {city}?",
        "HOW LONG DOES IT TAKE TO DRIVE TO {place}?",
        "IS THERE MUCH TRAFFIC ON THE WAY TO {place}?", "GET ME A TRAIN TICKET TO {city} {day}",
        "WHAT TIME DOES THE LAST BUS TO {place} LEAVE?", "ORDER A CAB TO {place}",
        "FIND ME A FLIGHT TO {city} {day}",
    ),
    "cooking": (
        "HOW DO I MAKE {dish}?", "GIVE ME A RECIPE FOR {dish}",
        "HOW LONG SHOULD I BOIL {food}?", "WHAT CAN I COOK WITH {ingredient} AND {ingredient2}?",
        "HOW MANY GRAMS OF {baking} ARE IN A CUP?", "FIND ME A QUICK {meal} RECIPE",
        "WHAT TEMPERATURE SHOULD I BAKE {dish} AT?", "I NEED A RECIPE WITH {ingredient}",
    ),
    "email": (
        "SEND AN EMAIL TO {person} ABOUT {topic}", "DO I HAVE ANY NEW EMAILS?",
        "READ MY LATEST EMAIL FROM {person}", "REPLY TO {person} AND SAY {reply}",
        "CHECK MY INBOX FOR MESSAGES FROM {person}", "DELETE ALL EMAILS FROM {sender}",
        "FORWARD THE LAST EMAIL TO {person}", "WRITE AN EMAIL TO {person} SAYING {reply}",
    ),
}

SLOTS: Dict[str, Tuple[str, ...]] = {
    "time": (
        "SEVEN AM", "SIX THIRTY IN THE MORNING", "HALF PAST EIGHT", "NINE FIFTEEN",
        "TEN PM", "QUARTER TO SEVEN", "NOON", "FIVE FORTY FIVE", "ELEVEN O CLOCK",
        "MIDNIGHT", "TWO IN THE AFTERNOON", "EIGHT TONIGHT", "FOUR THIRTY",
    ),
    "day": (
        "TOMORROW", "ON MONDAY", "ON TUESDAY", "ON WEDNESDAY", "ON THURSDAY", "ON FRIDAY",
        "ON SATURDAY", "ON SUNDAY", "THIS WEEKEND", "TONIGHT", "NEXT WEEK", "THIS EVENING",
        "TODAY", "ON SUNDAY MORNING",
    ),
    "minutes": ("FIVE", "TEN", "FIFTEEN", "TWENTY", "THIRTY", "FORTY FIVE"),
    "city": (
        "LONDON", "PARIS", "BOSTON", "CHICAGO", "MADRID", "TOKYO", "BERLIN", "DUBLIN",
        "SYDNEY", "TORONTO", "SEATTLE", "EDINBURGH", "ROME", "DENVER", "GLASGOW", "MIAMI",
    ),
    "genre": (
        "JAZZ", "ROCK", "CLASSICAL", "POP", "COUNTRY", "BLUES", "REGGAE", "FOLK",
        "HIP HOP", "ELECTRONIC", "SOUL", "OPERA",
    ),
    "playlist": (
        "WORKOUT", "MORNING", "DINNER", "ROAD TRIP", "STUDY", "PARTY", "RELAXING", "SUMMER",
    ),
    "artist": (
        "THE BEATLES", "ADELE", "QUEEN", "MADONNA", "COLDPLAY", "BOB DYLAN", "ELTON JOHN",
        "THE ROLLING STONES", "NINA SIMONE", "BRUCE SPRINGSTEEN", "TAYLOR SWIFT",
    ),
    "room": (
        "KITCHEN", "LIVING ROOM", "BEDROOM", "BATHROOM", "OFFICE", "GARAGE", "HALLWAY",
        "DINING ROOM", "GARDEN", "BASEMENT",
    ),
    "person": (
        "JOHN", "SARAH", "MY MANAGER", "EMMA", "DAVID", "MY SISTER", "THE TEAM", "PETER",
        "LUCY", "MY MOTHER", "MY BROTHER", "JAMES", "ANNA", "MICHAEL",
    ),
    "task": (
        "CALL THE BANK", "BUY MILK", "PAY THE RENT", "WATER THE PLANTS", "BOOK A TABLE",
        "SEND THE REPORT", "PICK UP THE KIDS", "RENEW MY PASSPORT", "TAKE OUT THE BINS",
        "FEED THE CAT",
    ),
    "event": (
        "MEETING", "APPOINTMENT", "DENTIST APPOINTMENT", "LUNCH", "CONFERENCE CALL",
        "DOCTOR APPOINTMENT", "BIRTHDAY PARTY", "INTERVIEW", "YOGA CLASS",
    ),
    "onoff": ("ON", "OFF"),
    "colour": ("RED", "BLUE", "GREEN", "WARM WHITE", "PURPLE", "YELLOW", "ORANGE", "PINK"),
    "degrees": (
        "SIXTEEN", "SEVENTEEN", "EIGHTEEN", "NINETEEN", "TWENTY", "TWENTY ONE",
        "TWENTY TWO", "TWENTY THREE", "SEVENTY", "SEVENTY TWO",
    ),
    "device": (
        "HEATER", "FAN", "COFFEE MACHINE", "TELEVISION", "AIR CONDITIONER", "DISHWASHER",
        "WASHING MACHINE", "KETTLE", "RADIO", "OVEN",
    ),
    "place": (
        "THE AIRPORT", "THE STATION", "WORK", "THE OFFICE", "THE TOWN CENTRE",
        "THE HOSPITAL", "THE MUSEUM", "THE STADIUM", "THE BEACH", "MY HOTEL",
        "THE UNIVERSITY", "THE SHOPPING MALL",
    ),
    "dish": (
        "PANCAKES", "LASAGNA", "CHICKEN CURRY", "TOMATO SOUP", "BANANA BREAD", "FRIED RICE",
        "APPLE PIE", "VEGETABLE STEW", "CHOCOLATE CAKE", "FISH PIE", "POTATO SALAD",
    ),
    "food": ("AN EGG", "PASTA", "POTATOES", "RICE", "BROCCOLI", "CARROTS", "CORN", "PEAS"),
    "ingredient": (
        "CHICKEN", "MUSHROOMS", "SPINACH", "BEANS", "EGGS", "TOMATOES", "ONIONS", "CHEESE",
        "LEMONS", "GARLIC",
    ),
    "baking": ("FLOUR", "SUGAR", "BUTTER", "RICE", "OATS", "COCOA"),
    "meal": ("BREAKFAST", "LUNCH", "DINNER", "VEGETARIAN", "DESSERT", "SOUP"),
    "topic": (
        "THE MEETING", "THE PROJECT", "THE PARTY ON SATURDAY", "THE BUDGET", "DINNER PLANS",
        "THE HOLIDAY", "THE REPORT", "THE NEW CONTRACT", "THE TRIP",
    ),
    "reply": (
        "I WILL BE LATE", "SEE YOU TOMORROW", "THANKS FOR THE UPDATE", "SOUNDS GOOD TO ME",
        "I CANNOT MAKE IT TODAY", "LET US TALK ON MONDAY",
    ),
    "sender": ("THE BANK", "THE NEWSLETTER", "MY LANDLORD", "THE SCHOOL", "THE GYM"),
}
SLOTS["ingredient2"] = SLOTS["ingredient"]

PREFIXES = ("HEY", "OKAY", "EXCUSE ME")
POLITE = "PLEASE"
_SLOT_RE = re.compile(r"\{(\w+)\}")
_WORDS_RE = re.compile(r"^[A-Z]+( [A-Z]+)*$")


def make_sentence(scenario: str, rng: random.Random) -> Tuple[str, str]:
    """One sentence of ``scenario``: (text to speak, transcript).

    The transcript is upper case words separated by single spaces; the spoken
    text is the same in lower case, ended by "." or "?".
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown scenario {scenario!r}; known: {sorted(SCENARIOS)}")
    template = rng.choice(SCENARIOS[scenario])
    question = template.endswith("?")
    template = template.rstrip("?")
    chosen: Dict[str, str] = {}

    def fill(match):
        slot = match.group(1)
        options = [o for o in SLOTS[slot] if o not in chosen.values()]
        chosen[slot] = rng.choice(options)
        return chosen[slot]

    words = _SLOT_RE.sub(fill, template)
    draw = rng.random()
    if draw < 0.12:
        words = f"{rng.choice(PREFIXES)} {words}"
    elif draw < 0.22 and not question:
        words = f"{POLITE} {words}" if rng.random() < 0.5 else f"{words} {POLITE}"
    words = " ".join(words.split())
    if not _WORDS_RE.match(words):  # a bad template or slot filler
        raise AssertionError(f"Not a clean transcript: {words!r}")
    return words.lower() + ("?" if question else "."), words
