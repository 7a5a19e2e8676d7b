"""How many prompt tokens one step may read beside running streams.

Alone, a prompt takes the whole batch (llama.cpp's own prefill speed). Beside
generating streams every prompt token read in a step delays each stream's
next token, so the chunk is sized from measured costs: prompt tokens may take
``share`` of a step's time and the streams keep the rest (share 0.8: they run
at no less than a fifth of their own rate). Costs are medians of the steps
actually run, so they follow the machine's load and the KV cache's size.

The chunk never falls below ``floor`` (64, the fixed chunk this engine used
to take): on a 2-core CPU a prompt token costs about as much as a stream's
token, the share alone would allow only 8-30 tokens a step, and prompt tokens
read that few at a time cost about twice as much each as in a full batch
(measured with the share alone: a 4,000-token document beside 4 streams
took 1.9x as long as alone, against 1.07x for llama-server, which stalls
the streams instead). Where prompt tokens are cheap (a GPU, many streams)
the share grows the chunk to the whole batch.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

# Costs are medians of this many recent steps: one step stalled by another
# process on the machine must not swing the chunk.
WINDOW = 16


@dataclass
class PrefillBudget:
    n_batch: int
    share: float  # of a step's time, for prompt tokens while streams generate
    floor: int = 64  # never fewer prompt tokens a step (see above)
    _stream: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _prompt: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    @property
    def seconds_per_stream_token(self) -> float | None:
        return statistics.median(self._stream) if self._stream else None

    @property
    def seconds_per_prompt_token(self) -> float | None:
        return statistics.median(self._prompt) if self._prompt else None

    def tokens(self, generating: int) -> int:
        """Prompt tokens the next step may read beside ``generating`` streams."""
        room = self.n_batch - generating
        if generating == 0:
            return room
        stream, prompt = self.seconds_per_stream_token, self.seconds_per_prompt_token
        if stream is None or prompt is None:
            chunk = self.floor
        else:
            # prompt * chunk = share / (1 - share) * (stream * generating)
            chunk = int(self.share / (1 - self.share) * stream * generating / prompt)
        return max(1, min(room, max(self.floor, chunk)))

    def observe(self, seconds: float, generating: int, prompt_tokens: int) -> None:
        """Learn from one decoded step of ``generating`` stream tokens and ``prompt_tokens``."""
        if prompt_tokens == 0:
            if generating:
                self._stream.append(seconds / generating)
            return
        streams = generating * (self.seconds_per_stream_token or 0.0)
        if seconds > streams:
            self._prompt.append((seconds - streams) / prompt_tokens)
