"""Segment pairs as tasks of the feedback store, so that people and the synthetic teacher label them
through the same service, and one path feeds the reward model.

    annotator = StoreAnnotator("runs/control/feedback.db", "control", env_id, teacher=None)  # people
    labels = annotator.label(segments_a, segments_b, iteration)   # waits until each pair is judged

Each query round becomes one campaign `<prefix>-round-<iteration>` (pairs, overlap 1, no rubric): a
task per pair, whose two "responses" are `media:<campaign>/<pair>-<side>.gif`, animations of the two
segments rendered from the environment (`render_mode="rgb_array"` frames, written as GIFs by Pillow)
into the store's media folder (`Store.media_folder`: `<store file>.media/`), which `rlhfkit serve` serves at
/media from its own origin, inside its Content-Security-Policy (img-src 'self'). The web app's
annotate page shows a `media:` response as the animation; the keyboard flow is the usual one
(1 / 2 / t / b, Enter). With a `teacher`, the synthetic teacher fills the campaign the way simulated
annotators do (`rlhfkit.feedback.simulate.fill_campaign`: the service's claim, payload and
store_judgment), seeing only the shown names, and nothing is rendered. Either way the labels are read
back from the store's judgments (`service.pair_votes`): a is better 1, b 0, tie or both bad 0.5;
a skipped pair gives no label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from rlhfkit.control.reward import Segment
from rlhfkit.control.teacher import Teacher
from rlhfkit.errors import ConfigError
from rlhfkit.feedback import service
from rlhfkit.feedback.campaigns import CampaignSpec, ResponseGroup, create_campaign
from rlhfkit.feedback.simulate import fill_campaign
from rlhfkit.feedback.store import Campaign, Judgment, Store, Task

GUIDELINES = ("Watch both movements (they loop). Which one does the task better? For the pendulum: "
              "swinging up and staying upright, with little effort. Press 1 or 2 for the better one, t when "
              "they are equally good, b when both are bad, then Enter.")
LABELS = {"first": 1.0, "second": 0.0, "tie": 0.5, "both_bad": 0.5}


@dataclass
class Answer:
    """What `fill_campaign` expects of an annotator's answer (rlhfkit.tasks.assistant's shape)."""

    outcome: str
    criteria: dict
    rationale: str = ""
    seconds: float = 0.0


class SegmentTeacher:
    """The synthetic teacher as a simulated annotator of the store: it answers from the labels the
    teacher gave the round's pairs (computed together, so B-Pref's tie threshold sees the whole batch),
    looking them up by the names it was shown, in the order shown."""

    name = "oracle"

    def __init__(self, answers: dict[tuple[str, str], float]) -> None:
        self.answers = answers

    def compare(self, prompt: str, first: str, second: str) -> Answer:
        if (first, second) in self.answers:
            label = self.answers[first, second]
        else:
            label = 1.0 - self.answers[second, first]
        return Answer({1.0: "a", 0.0: "b"}.get(label, "tie"), {})


def frames(env_id: str, segment: Segment, size: int = 160) -> list:
    """The segment as images: the env's own renderer, set to each recorded state in turn."""
    import gymnasium as gym
    from PIL import Image

    if segment.states is None:
        raise ConfigError("these segments kept no env states to render from (collect with states=True)")
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    images = []
    for state, action in zip(segment.states, segment.actions):
        env.unwrapped.state = np.array(state)
        if hasattr(env.unwrapped, "last_u"):  # the pendulum draws the torque it is given
            env.unwrapped.last_u = float(action[0])
        images.append(Image.fromarray(env.render()).resize((size, size)))
    env.close()
    return images


def write_gif(images: list, path: Path, fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


class StoreAnnotator:
    """Labels segment pairs through a campaign of the feedback store (see the module docstring)."""

    def __init__(self, store_path: str, prefix: str, env_id: str, teacher: Teacher | None = None,
                 rng: np.random.Generator | None = None, wait_seconds: float = 3600.0, fps: float = 20.0,
                 poll_seconds: float = 1.0) -> None:
        self.store = Store.open(store_path)
        self.media = self.store.media_folder()
        if self.media is None and teacher is None:
            raise ConfigError(f"--store {store_path!r}: the animations for people live beside a SQLite store file; "
                              f"give a file path")
        self.prefix, self.env_id, self.teacher = prefix, env_id, teacher
        self.rng = rng or np.random.default_rng(0)
        self.wait_seconds, self.fps, self.poll_seconds = wait_seconds, fps, poll_seconds

    def label(self, a: list[Segment], b: list[Segment], iteration: int) -> np.ndarray:
        """Labels (P,) for the pairs (a[i], b[i]); NaN where the pair was skipped."""
        name = f"{self.prefix}-round-{iteration}"
        names = [(f"media:{name}/{i}-a.gif", f"media:{name}/{i}-b.gif") for i in range(len(a))]
        if self.teacher is None:  # 1) people need to see the segments
            for (name_a, name_b), seg_a, seg_b in zip(names, a, b):
                write_gif(frames(self.env_id, seg_a), self.media / name_a.removeprefix("media:"), self.fps)
                write_gif(frames(self.env_id, seg_b), self.media / name_b.removeprefix("media:"), self.fps)
        groups = [ResponseGroup(f"Pair {i + 1} of {len(a)}: which movement is better?",
                                [(name_a, "segment", 0), (name_b, "segment", 1)])
                  for i, (name_a, name_b) in enumerate(names)]
        spec = CampaignSpec(name=name, k=2, overlap=1, rubric=[], guidelines=GUIDELINES, require_rationale="never")
        create_campaign(self.store, spec, groups)  # 2) one task per pair
        if self.teacher is not None:  # 3) the teacher fills it through the service, as simulated annotators do
            given = self.teacher.label(np.stack([s.true_rewards for s in a]), np.stack([s.true_rewards for s in b]),
                                       self.rng)
            fill_campaign(self.store, name, [SegmentTeacher(dict(zip(names, given)))], seed=iteration)
        else:
            self.wait(name, len(a))
        return self.read(name, names)  # 4) the labels, back from the store

    def wait(self, name: str, count: int) -> None:
        """Until every task of the campaign has a judgment, or `wait_seconds` pass (then an error)."""
        deadline = time.monotonic() + self.wait_seconds
        print(f"{count} segment pairs wait in campaign {name!r}: rlhfkit serve --db <store>, then add "
              f"annotators to it", flush=True)
        while True:
            with self.store.read() as session:
                campaign = service.get_campaign(session, name)
                judged = len(set(session.scalars(select(Judgment.task_id).join(Task)
                                                 .where(Task.campaign_id == campaign.id))))
            if judged >= count:
                return
            if time.monotonic() > deadline:
                raise ConfigError(f"campaign {name!r}: {judged} of {count} pairs judged after {self.wait_seconds:.0f} s "
                                  f"(--wait-seconds)")
            time.sleep(self.poll_seconds)

    def read(self, name: str, names: list[tuple[str, str]]) -> np.ndarray:
        index = {text: (i, side) for i, pair in enumerate(names) for side, text in enumerate(pair)}
        labels = np.full(len(names), np.nan)
        with self.store.read() as session:
            campaign = session.scalar(select(Campaign).where(Campaign.name == name))
            tasks, judgments = service.load_judgments(session, campaign)
            texts = {item.response_id: item.response.text for t in tasks for item in t.items}
            for (_, first, _second), _who, label in service.pair_votes(tasks, judgments):
                pair, side = index[texts[first]]
                labels[pair] = LABELS[label] if side == 0 else 1.0 - LABELS[label]
        return labels
