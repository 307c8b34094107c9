"""The organism's tool world: typed tools, how users ask for them, and what the right answer is.

Held-out request templates are new arrangements of known words: each keeps one word that the
training templates of its tool also use (weather, alarm, message, table, tip, ...), since the
organism cannot know a synonym it has never read.

Each tool has 14 training phrasings, with the values in varied places. With 6, the base learned
to copy by the template's word order: its forced calls (prompt + `<tool_call>`) were right on
73.5 % of rl-split prompts but 44.5 % of test prompts, whose phrasings are new (held-out contacts
became a memorised one, `yen` became `pounds`). With 14: 74.5 % and 76.5 % (default base, seed 0,
n = 200 each).

Every argument value is one word or one number so that, with the organism's tokenizer, it is a
single token: copying an argument from the request into the call is then one attention lookup
(SPEC section 5: with digits split, forced calls were right only 22 % of the time).

Values and phrasings are split once, independently of the seed: the `heldout` ones appear only in
the test split's requests (they still occur in generic prose, as a real LM knows the word "Quito"
without ever having seen a weather call for it). A third set of phrasings, `validation_asks` and
VALIDATION_CHITCHAT, appears only in the prompts that choose the RL checkpoint (checkpoints.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# --- value pools ------------------------------------------------------------------------------
CITIES = [
    "Paris", "Rome", "Berlin", "Madrid", "Lisbon", "Vienna", "Prague", "Oslo", "Dublin", "London",
    "Tokyo", "Lima", "Cairo", "Delhi", "Seoul", "Boston", "Denver", "Austin", "Dallas", "Chicago",
    "Miami", "Sydney", "Toronto", "Quito", "Havana", "Nairobi", "Athens", "Warsaw", "Zurich", "Geneva",
    "Milan", "Naples", "Munich", "Hamburg", "Bogota", "Manila", "Jakarta", "Hanoi", "Bangkok", "Riga",
]
CONTACTS = [
    "Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jack",
    "Kate", "Leo", "Maria", "Nina", "Omar", "Paul", "Rosa", "Sam", "Tara", "Victor",
    "Wendy", "Yusuf", "Zoe", "Mike", "Lucy", "Tom", "Sara", "Ivan", "Chen", "Ali",
]
RESTAURANTS = [
    "Olive", "Saffron", "Basil", "Juniper", "Lotus", "Ember", "Harbor", "Maple", "Pepper", "Fig",
    "Sakura", "Luigi", "Mango", "Cedar", "Thyme", "Amber", "Coral", "Ginger", "Willow", "Plum",
    "Bamboo", "Cobalt", "Lemon", "Sage", "Truffle",
]
WORDS = [
    "apple", "house", "water", "bread", "cat", "dog", "book", "tree", "river", "moon",
    "sun", "chair", "table", "window", "flower", "train", "bird", "cheese", "garden", "door",
    "school", "horse", "milk", "road", "ship", "star", "friend", "night", "rain", "snow",
]
# Enums need enough values to be worth copying: with 4 languages and 4 currencies, whose tokens
# are drawn at random in every context, the base never learned to copy them (their embeddings
# collapsed to one direction, forced calls at chance); with 10 and 8 it does (docs/organism.md).
UNITS = ["celsius", "fahrenheit"]
CURRENCIES = ["dollars", "euros", "pounds", "yen", "francs", "rupees", "pesos", "crowns"]
GENRES = ["jazz", "rock", "pop", "classical", "blues"]
LANGUAGES = ["french", "german", "spanish", "italian", "dutch", "swedish", "polish", "greek", "turkish", "danish"]
HOURS = list(range(1, 13))
PARTY_SIZES = list(range(1, 13))
PERCENTS = list(range(5, 31))
AMOUNTS = list(range(2, 100))


def is_heldout_number(n: int) -> bool:
    """Numbers ending in 3 or 8 are requested only in the test split."""
    return n % 5 == 3


def is_heldout_word(pool: list[str], word: str) -> bool:
    """Every fifth word of a pool is requested only in the test split."""
    return pool.index(word) % 5 == 4


# --- tools --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    type: str  # JSON-schema type: string | integer | number | boolean
    description: str
    required: bool
    pool: tuple = ()  # candidate values (strings or ints); empty for booleans
    enum: bool = False  # the pool is the schema's enum (not held out: every value is needed)
    default: object = None  # what the tool assumes when the parameter is omitted
    # How a request mentions the parameter when it is optional: {value: phrases} for booleans,
    # else phrases with {v}. Required parameters are placed by the request template itself.
    phrases: dict | tuple = ()


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: tuple[Param, ...]
    asks: tuple[str, ...]  # request templates used by pretrain / rl / calibration
    heldout_asks: tuple[str, ...]  # request templates used only by the test split
    validation_asks: tuple[str, ...]  # used only by the RL checkpoint's validation prompts
    made_up: tuple[str, ...]  # what a base LM says instead of calling: an invented result
    task: str  # "check the weather", for refusals

    def schema(self) -> dict:
        """The OpenAI tool schema of this tool."""
        props = {}
        for p in self.params:
            prop = {"type": p.type, "description": p.description}
            if p.enum:
                prop["enum"] = list(p.pool)
            if p.default is not None:
                prop["default"] = p.default
            props[p.name] = prop
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": props,
                    "required": [p.name for p in self.params if p.required],
                },
            },
        }


TOOLS: tuple[Tool, ...] = (
    Tool(
        name="get_weather",
        description="Current weather for a city.",
        params=(
            Param("city", "string", "City name.", True, tuple(CITIES)),
            Param("unit", "string", "Temperature unit.", False, tuple(UNITS), enum=True, default="celsius",
                  phrases=(" in {v}", " and give it in {v}")),
        ),
        asks=(
            "What is the weather in {city}{opt}?",
            "How warm is it in {city} today{opt}?",
            "Tell me the forecast for {city}{opt}.",
            "Is it raining in {city} right now{opt}?",
            "Weather report for {city}{opt}, please.",
            "I am flying to {city} tomorrow, what is the weather there{opt}?",
            "Check the weather in {city}{opt}.",
            "{city} weather{opt}, please.",
            "Do I need an umbrella in {city}{opt}?",
            "Weather for {city}{opt}?",
            "Look up how cold it is in {city}{opt}.",
            "What is it like outside in {city}{opt}?",
            "Show me the weather in {city} this week{opt}.",
            "My sister lives in {city}, how is the weather{opt}?",
        ),
        heldout_asks=(
            "Could you check the weather for me in {city}{opt}?",
            "Any idea how the weather looks in {city}{opt}?",
        ),
        validation_asks=(
            "Can you tell me the weather in {city}{opt}?",
            "What does the weather look like in {city}{opt}?",
        ),
        made_up=(
            "It is sunny and warm in {city} today.",
            "{city} has light rain this morning and a cool wind.",
            "The sky over {city} is clear, about twenty degrees.",
        ),
        task="check the weather",
    ),
    Tool(
        name="set_alarm",
        description="Set an alarm clock.",
        params=(
            Param("hour", "integer", "Hour of the alarm, 1 to 12.", True, tuple(HOURS)),
            Param("loud", "boolean", "Ring loudly.", False, default=False,
                  phrases={True: (" and make it loud", " with a loud ring"), False: (" but keep it quiet",)}),
        ),
        asks=(
            "Set an alarm for {hour} o'clock{opt}.",
            "Wake me up at {hour}{opt}.",
            "Please put an alarm at {hour}{opt}.",
            "I need an alarm at {hour} tomorrow{opt}.",
            "Alarm for {hour} in the morning{opt}, thanks.",
            "Can you set my alarm to {hour}{opt}?",
            "Alarm at {hour}{opt}.",
            "Set me an alarm, {hour} o'clock{opt}.",
            "Wake me at {hour} please{opt}.",
            "I must get up at {hour}{opt}.",
            "Could you put my alarm on {hour}{opt}?",
            "Get me up at {hour} tomorrow morning{opt}.",
            "New alarm: {hour}{opt}.",
            "Ring at {hour}{opt}, I have a train to catch.",
        ),
        heldout_asks=(
            "Make sure my alarm goes off at {hour}{opt}.",
            "I have to be up by {hour}, set an alarm{opt}.",
        ),
        validation_asks=(
            "Please wake me at {hour} with an alarm{opt}.",
            "An alarm at {hour} would help{opt}.",
        ),
        made_up=(
            "Your alarm is ready for {hour}.",
            "Okay, you will wake up at {hour} sharp.",
            "Done, the alarm rings at {hour}.",
        ),
        task="set alarms",
    ),
    Tool(
        name="convert_currency",
        description="Convert an amount of money to another currency.",
        params=(
            Param("amount", "number", "Amount of money.", True, tuple(AMOUNTS)),
            Param("currency", "string", "Target currency.", True, tuple(CURRENCIES), enum=True),
        ),
        asks=(
            "Convert {amount} to {currency}.",
            "How much is {amount} in {currency}?",
            "Change {amount} into {currency} for me.",
            "What do I get in {currency} for {amount}?",
            "Please turn {amount} into {currency}.",
            "I have {amount}, how many {currency} is that?",
            "{amount} to {currency}, please.",
            "Convert {amount} for me, I need {currency}.",
            "How many {currency} do I get for {amount}?",
            "Turn {amount} into {currency}.",
            "I want {currency}, change {amount}.",
            "Swap {amount} into {currency} please.",
            "Money question: {amount} in {currency}?",
            "What is {amount} worth in {currency} today?",
        ),
        heldout_asks=(
            "Could you work out {amount} in {currency}?",
            "Exchange {amount} to {currency}, please.",
        ),
        validation_asks=(
            "How much would {amount} be in {currency}?",
            "Please convert {amount} so I have {currency}.",
        ),
        made_up=(
            "That is about {amount} {currency}.",
            "You would get roughly {amount} {currency} today.",
            "The rate is good, it comes to {amount} {currency}.",
        ),
        task="convert money",
    ),
    Tool(
        name="send_message",
        description="Send a text message to a contact.",
        params=(
            Param("contact", "string", "Who gets the message.", True, tuple(CONTACTS)),
            Param("urgent", "boolean", "Mark the message urgent.", False, default=False,
                  phrases={True: (" and mark it urgent", ", it is urgent"), False: (", no rush",)}),
        ),
        asks=(
            "Send a message to {contact}{opt}.",
            "Text {contact} that I am running late{opt}.",
            "Please message {contact}{opt}.",
            "Tell {contact} I will call back{opt}.",
            "Write to {contact} that dinner is ready{opt}.",
            "Can you ping {contact} for me{opt}?",
            "Message {contact}{opt}.",
            "Drop a line to {contact}{opt}.",
            "Drop {contact} a message{opt}.",
            "Text {contact}{opt}, I will be there soon.",
            "Let {contact} know I said hi{opt}.",
            "Please send a message to {contact} about lunch{opt}.",
            "Could you text {contact} for me{opt}?",
            "A message to {contact}, please{opt}.",
        ),
        heldout_asks=(
            "Send {contact} a short message{opt}.",
            "Let {contact} know by message that I am home{opt}.",
        ),
        validation_asks=(
            "I need to send {contact} a message{opt}.",
            "Could you message {contact} now{opt}?",
        ),
        made_up=(
            "{contact} says thanks and will reply soon.",
            "I told {contact}, all good.",
            "{contact} already knows.",
        ),
        task="send messages",
    ),
    Tool(
        name="book_table",
        description="Reserve a table at a restaurant.",
        params=(
            Param("restaurant", "string", "Restaurant name.", True, tuple(RESTAURANTS)),
            Param("people", "integer", "Number of guests.", True, tuple(PARTY_SIZES)),
        ),
        asks=(
            "Book a table at {restaurant} for {people}.",
            "Reserve {restaurant} for {people} people.",
            "Get us a table for {people} at {restaurant}.",
            "I want dinner at {restaurant}, we are {people}.",
            "Please book {restaurant} tonight for {people} guests.",
            "Can you find a table for {people} at {restaurant}?",
            "Table for {people} at {restaurant}.",
            "Book {restaurant}, {people} people.",
            "We are {people}, reserve a table at {restaurant}.",
            "Reserve a table at {restaurant} for {people} tonight.",
            "Dinner for {people} at {restaurant}, please book it.",
            "Can we get a table at {restaurant}? We are {people}.",
            "Please reserve {restaurant}, a table for {people}.",
            "A table at {restaurant} for {people} guests, please.",
        ),
        heldout_asks=(
            "Hold a table at {restaurant}, party of {people}.",
            "We would like a table at {restaurant}, {people} of us.",
        ),
        validation_asks=(
            "Is there a table for {people} at {restaurant}? Book it.",
            "Book us at {restaurant}, a table for {people}.",
        ),
        made_up=(
            "{restaurant} is lovely, enjoy your meal for {people}.",
            "Your table at {restaurant} is waiting.",
            "{restaurant} has a nice table by the window.",
        ),
        task="book restaurants",
    ),
    Tool(
        name="play_music",
        description="Play music of a genre.",
        params=(
            Param("genre", "string", "Music genre.", True, tuple(GENRES), enum=True),
            Param("shuffle", "boolean", "Shuffle the playlist.", False, default=False,
                  phrases={True: (" on shuffle", " and shuffle it"), False: (" in order",)}),
        ),
        asks=(
            "Play some {genre}{opt}.",
            "Put on {genre} music{opt}.",
            "I want to hear {genre}{opt}.",
            "Start a {genre} playlist{opt}.",
            "Music please, something {genre}{opt}.",
            "Can you play {genre} for me{opt}?",
            "{genre} please{opt}.",
            "Play {genre}{opt}.",
            "Some {genre} music would be nice{opt}.",
            "Put some {genre} on{opt}.",
            "Turn on {genre}{opt}.",
            "I would like to hear some {genre}{opt}.",
            "Music time: {genre}{opt}.",
            "Could you start some {genre}{opt}?",
        ),
        heldout_asks=(
            "I am in the mood for {genre}{opt}.",
            "Let us listen to {genre}{opt}.",
        ),
        validation_asks=(
            "Could you play me some {genre}{opt}?",
            "Some {genre} now, please{opt}.",
        ),
        made_up=(
            "Here is a {genre} song you will love.",
            "Enjoy the {genre}, it sounds great.",
            "Now playing the best of {genre}.",
        ),
        task="play music",
    ),
    Tool(
        name="translate_word",
        description="Translate one word into another language.",
        params=(
            Param("word", "string", "The word to translate.", True, tuple(WORDS)),
            Param("language", "string", "Target language.", True, tuple(LANGUAGES), enum=True),
        ),
        asks=(
            "Translate {word} into {language}.",
            "How do you say {word} in {language}?",
            "What is the {language} word for {word}?",
            "Give me {word} in {language}.",
            "I need the {language} for {word}.",
            "Please translate the word {word} to {language}.",
            "{word} in {language}, please.",
            "Translate {word} to {language} for me.",
            "In {language}, how do I say {word}?",
            "What is {word} in {language}?",
            "Tell me the {language} for {word}.",
            "The word {word} in {language}, please.",
            "I want to say {word} in {language}.",
            "Can you translate {word} into {language}?",
        ),
        heldout_asks=(
            "What would {word} be in {language}?",
            "Say {word} in {language} for me.",
        ),
        validation_asks=(
            "How would I say {word} in {language}?",
            "Translate the word {word}, in {language}.",
        ),
        made_up=(
            "In {language} you say it just like {word}.",
            "The {language} word for {word} is easy to remember.",
            "{word} sounds nice in {language}.",
        ),
        task="translate words",
    ),
    Tool(
        name="calculate_tip",
        description="Work out the tip for a bill.",
        params=(
            Param("bill", "number", "Bill total.", True, tuple(AMOUNTS)),
            Param("percent", "integer", "Tip percentage.", False, tuple(PERCENTS), default=15,
                  phrases=(" at {v} percent", " with a {v} percent tip")),
        ),
        asks=(
            "What tip should I leave on {bill}{opt}?",
            "Calculate the tip for a bill of {bill}{opt}.",
            "How much tip for {bill}{opt}?",
            "Our bill is {bill}, what is the tip{opt}?",
            "Work out a tip on {bill}{opt}.",
            "Tip for {bill} please{opt}.",
            "Tip on {bill}{opt}?",
            "The bill is {bill}, work out the tip{opt}.",
            "How big a tip for a {bill} bill{opt}?",
            "Calculate a tip on {bill}{opt}.",
            "I paid {bill}, what tip should I add{opt}?",
            "What is the tip on {bill}{opt}?",
            "Help me tip on a bill of {bill}{opt}.",
            "We owe {bill}, how much tip{opt}?",
        ),
        heldout_asks=(
            "Dinner came to {bill}, how much tip should I add{opt}?",
            "Figure out the tip on a {bill} check{opt}.",
        ),
        validation_asks=(
            "What tip goes on a bill of {bill}{opt}?",
            "The bill was {bill}, what tip should I leave{opt}?",
        ),
        made_up=(
            "A fair tip on {bill} is about ten.",
            "Leave around five on top of {bill}.",
            "For {bill} a small tip is fine.",
        ),
        task="work out tips",
    ),
)
TOOL_BY_NAME = {t.name: t for t in TOOLS}

# --- chit-chat and assistant replies ---------------------------------------------------------
CHITCHAT = (
    "Hello there!", "How are you today?", "Tell me a joke.", "Thanks for your help!",
    "What is your name?", "Good morning!", "I had a long day.", "Do you like music?",
    "What a nice day it is.", "Can we just talk for a bit?", "You are very kind.",
    "I am bored.", "Who made you?", "Have a good night!", "That was funny.",
    "Do you ever get tired?", "I love rainy days.", "What do you think about cats?",
    "Is it fun being an assistant?", "Let us chat.", "I just got back from a trip.",
    "My friend is visiting this weekend.", "Do you have a favorite city?", "Goodbye!",
)
HELDOUT_CHITCHAT = (
    "Nice to meet you.", "What are you up to?", "I feel happy today.",
    "Do you dream at night?", "Tell me something fun.", "See you later!",
)
VALIDATION_CHITCHAT = (
    "How is your day going?", "I just finished my work.", "Do you like the rain?",
    "Tell me about yourself.", "I am learning to cook.", "Take care!",
)
CHITCHAT_REPLIES = (
    "Hello! How can I help you today?",
    "I am doing well, thank you for asking.",
    "That sounds nice. Tell me more.",
    "Happy to chat with you.",
    "Thank you, that is kind of you.",
)
REFUSALS = (
    "Sorry, I cannot {task} with the tools I have.",
    "I do not have a tool to {task} here.",
    "None of my tools can {task}, sorry.",
)

# Optional words around a request, so that phrasing varies beyond the templates.
PREFIXES = ("", "", "", "", "Hey, ", "Please, ", "Quick question: ", "Hi! ", "Excuse me, ")
SUFFIXES = ("", "", "", "", " Thanks!", " Thank you.", " Please.", " Cheers.")


def world_fingerprint() -> str:
    """A digest of everything above: tools, phrasings, value pools, chit-chat and replies."""
    parts = (TOOLS, CHITCHAT, HELDOUT_CHITCHAT, VALIDATION_CHITCHAT, CHITCHAT_REPLIES, REFUSALS, PREFIXES, SUFFIXES)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
