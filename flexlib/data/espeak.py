"""Speech synthesis with eSpeak NG through ctypes, from the `espeakng-loader` wheel (libespeak-ng and its voice
data, installed by pip: no system package). Used for the offline Speech Commands stand-in.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_PITCH = 1, 3          # espeak_PARAMETER: words per minute, base pitch 0-99
ESPEAK_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Engine:
    """The process-wide eSpeak NG engine in synchronous mode: every `say` returns the whole waveform."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as err:
            from .storage import MissingDatasetError
            raise MissingDatasetError("speech_commands (espeak-ng stand-in)", "the Python environment",
                                      "pip install espeakng-loader (or: pip install -e '.[quick]')") from err
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                      espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)      # kept referenced: the library calls it later
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def say(self, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        """`text` spoken by `voice` (an eSpeak NG voice name, optionally '+variant', e.g. 'en-us+f2') at `speed`
        words per minute and base `pitch` (0-99): float32 samples in [-1, 1) at `self.sample_rate` Hz."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        self.lib.espeak_SetParameter(ESPEAK_RATE, int(speed), 0)
        self.lib.espeak_SetParameter(ESPEAK_PITCH, int(pitch), 0)
        self._chunks = []
        data = text.encode() + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, 0, 0, ESPEAK_CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed for {text!r} with voice {voice!r} (status {status})")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        return samples.astype(np.float32) / 32768.0


@functools.cache
def engine() -> _Engine:
    return _Engine()
