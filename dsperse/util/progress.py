"""A progress bar that stays quiet when output is not a terminal (CI logs) unless asked."""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("dsperse.util.progress")


class Progress:
    def __init__(self, total: int, desc: str, initial: int = 0, enabled: bool = True):
        self.total, self.n, self.desc = total, initial, desc
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="slice", leave=True)
        self.enabled = enabled

    def update(self, k: int = 1) -> None:
        self.n += k
        if self._bar is not None:
            self._bar.update(k)
        elif self.enabled:
            log.info("%s: %d/%d slices proven", self.desc, self.n, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
