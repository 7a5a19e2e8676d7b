"""How many prompt tokens one step may read beside running streams.

Alone, a prompt takes the whole batch (llama.cpp's own prefill speed). Beside
generating streams every prompt token read in a step delays each stream's
next token, so the chunk is sized from measured costs: prompt tokens may take
``share`` of a step's time and the streams keep the rest (share 0.8: they run
at no less than a fifth of their own rate while a long prompt is read). On a
CPU, where a prompt token costs about as much as a stream's token, that is a
few dozen tokens; where prompt tokens are cheap (a GPU) it grows to the whole
batch. Costs are medians of the steps actually run, so they follow the
machine's load and the KV cache's size.

Short prompts are the exception: a chat turn of a few dozen tokens stalls
the streams once, briefly, while a document stalls them for as long as it is
read. So while any waiting prompt is short, the step may read at least
``SHORT_PROMPT`` tokens, and the scheduler serves the shortest first (as
vLLM lets short prefills pass long ones): newcomers start at once and a
document yields to them.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

# Until the first steps are measured: the fixed chunk the engine used to take.
UNMEASURED_CHUNK = 64
# A prompt with no more tokens than this to read is short (see above).
SHORT_PROMPT = 64
# Costs are medians of this many recent steps: one step stalled by another
# process on the machine must not swing the chunk.
WINDOW = 16


@dataclass
class PrefillBudget:
    n_batch: int
    share: float  # of a step's time, for prompt tokens while streams generate
    floor: int = 8  # never fewer prompt tokens per step, or a prompt beside streams crawls
    _stream: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _prompt: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    @property
    def seconds_per_stream_token(self) -> float | None:
        return statistics.median(self._stream) if self._stream else None

    @property
    def seconds_per_prompt_token(self) -> float | None:
        return statistics.median(self._prompt) if self._prompt else None

    def tokens(self, generating: int, shortest: int) -> int:
        """Prompt tokens the next step may read beside ``generating`` streams,
        ``shortest`` being the fewest tokens any waiting prompt has left."""
        room = self.n_batch - generating
        if generating == 0:
            return room
        if shortest <= SHORT_PROMPT:
            return max(1, min(room, max(SHORT_PROMPT, self._measured_chunk(generating))))
        return max(1, min(room, self._measured_chunk(generating)))

    def _measured_chunk(self, generating: int) -> int:
        stream, prompt = self.seconds_per_stream_token, self.seconds_per_prompt_token
        if stream is None or prompt is None:
            return UNMEASURED_CHUNK
        # prompt * chunk = share / (1 - share) * (stream * generating)
        return max(self.floor, int(self.share / (1 - self.share) * stream * generating / prompt))

    def observe(self, seconds: float, generating: int, prompt_tokens: int) -> None:
        """Learn from one decoded step of ``generating`` stream tokens and ``prompt_tokens``."""
        if prompt_tokens == 0:
            if generating:
                self._stream.append(seconds / generating)
            return
        streams = generating * (self.seconds_per_stream_token or 0.0)
        if seconds > streams:
            self._prompt.append((seconds - streams) / prompt_tokens)
