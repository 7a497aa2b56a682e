"""The side-by-side benchmark: this project against the emulator's ceiling, a seed-style baseline and
Celery, on the same emulator in the same run (scripts/bench). Celery and the baseline live only here."""
