"""What every stage needs at run time: atomic files, one writer per folder, progress, the environment.

Public API: ``files.atomic_write_json`` / ``atomic_write_text`` / ``prepare_output`` / ``read_json``;
``locks.exclusive`` / ``stop_with_parent``; ``progress.progress``; ``environment.environment``.
"""
