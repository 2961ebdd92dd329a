"""The prompt sketch: a fixed-hash unit vector of a bounded slice of the prompt."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from bandit_router.core.sketch import DIM, HEAD_CHARS, TAIL_CHARS, sketch


def test_a_sketch_is_a_unit_vector_and_an_empty_prompt_zeros():
    v = sketch("Translate into French: the weather is lovely today.")
    assert v.shape == (DIM,) and v.dtype == np.float32
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert not sketch("").any()


def test_prompts_of_one_kind_are_closer_than_prompts_of_two():
    sql = [sketch("Give me a query that finds duplicate emails in the users table."),
           sketch("Give me a query that finds users with no orders in ninety days.")]
    french = [sketch("Translate into French: Where is the nearest train station?"),
              sketch("Translate into French: Thank you for your patience.")]
    within = min(float(sql[0] @ sql[1]), float(french[0] @ french[1]))
    across = max(float(a @ b) for a in sql for b in french)
    assert within > across + 0.2


def test_only_the_head_and_tail_are_read():
    """The cost is bounded: a long prompt's middle does not change its sketch."""
    head, tail = "h" * HEAD_CHARS, "t" * TAIL_CHARS
    one = sketch(head + "first middle " * 500 + tail)
    two = sketch(head + "other words entirely " * 300 + tail)
    assert np.array_equal(one, two)


def test_the_hash_is_the_same_in_every_process():
    """Replicas and rebuilds must agree: no per-process hash seed reaches the sketch."""
    prompt = "Implement a thread-safe LRU cache in Rust"
    code = ("import sys; from bandit_router.core.sketch import sketch; "
            f"sys.stdout.write(sketch({prompt!r}).tobytes().hex())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=True).stdout
    assert other == sketch(prompt).tobytes().hex()
