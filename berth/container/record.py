"""A container as the engine records it: Docker's Config, HostConfig and State."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from berth.container.states import Status

ZERO_TIME = "0001-01-01T00:00:00Z"


def new_id() -> str:
    return os.urandom(32).hex()


def initial_state() -> dict:
    """Docker's State object of a container that never ran."""
    return {"Status": Status.CREATED.value, "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
            # berth's own bookkeeping, not shown by inspect.
            "RestartCount": 0, "ManuallyStopped": False}


@dataclass
class Container:
    id: str
    name: str
    image_id: str
    created: float
    status: Status
    spec: dict                 # Config, HostConfig, Path, Args, ImageName, Mounts, ...
    state: dict = field(default_factory=initial_state)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def config(self) -> dict:
        return self.spec["Config"]

    @property
    def host_config(self) -> dict:
        return self.spec["HostConfig"]

    @property
    def running(self) -> bool:
        return self.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)


# Docker's names-generator, abridged: adjective_surname.
_LEFT = ("admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold boring "
         "brave busy charming clever compassionate competent condescending confident cool cranky crazy "
         "dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
         "exciting fervent festive flamboyant focused friendly frosty funny gallant gifted goofy gracious "
         "great happy hardcore heuristic hopeful hungry infallible inspiring intelligent interesting "
         "jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty nervous "
         "nice nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky "
         "quizzical recursing relaxed reverent romantic sad serene sharp silly sleepy stoic strange "
         "stupefied suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous "
         "wizardly wonderful xenodochial youthful zealous zen").split()
_RIGHT = ("agnesi albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach bardeen "
          "bartik bassi beaver bell bhabha bhaskara blackwell bohr booth borg bose boyd brahmagupta "
          "brattain brown burnell buck cannon carson cartwright cerf chandrasekhar chaplygin chatelet "
          "chatterjee chebyshev clarke cohen colden cori cray curie darwin davinci dewdney dhawan diffie "
          "dijkstra dirac driscoll dubinsky easley edison einstein elbakyan elgamal elion ellis engelbart "
          "euclid euler faraday feistel fermat fermi feynman franklin gagarin galileo galois ganguly gates "
          "gauss germain goldberg goldstine goldwasser golick goodall gould greider grothendieck haibt "
          "hamilton haslett hawking heisenberg hellman hermann herschel hertz heyrovsky hodgkin hofstadter "
          "hoover hopper hugle hypatia jackson jang jemison jennings jepsen johnson joliot jones kalam "
          "kapitsa kare keldysh keller kepler khayyam khorana kilby kirch knuth kowalevski lalande lamarr "
          "lamport leakey leavitt lederberg lehmann lewin lichterman liskov lovelace lumiere mahavira "
          "margulis matsumoto maxwell mayer mccarthy mcclintock mclean mcnulty meitner mendel mendeleev "
          "meninsky merkle mestorf mirzakhani montalcini moore morse moser murdock napier nash neumann "
          "newton nightingale nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike "
          "poincare poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie robinson roentgen "
          "rosalind rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley shtern sinoussi "
          "snyder solomon spence stonebraker sutherland swanson swartz swirles taussig tesla tharp thompson "
          "torvalds tu turing varahamihira vaughan villani visvesvaraya volhard wescoff wilbur wiles "
          "williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky").split()


def random_name(retry: int = 0) -> str:
    name = f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"
    if name == "boring_wozniak":  # Steve Wozniak is not boring (Docker's rule)
        return random_name(retry)
    return name + (str(random.randint(0, 9)) if retry else "")
