"""Writing outputs safely: atomic files, files read only when regular and bounded, and output folders that are
claimed, staged and committed. One module a noun:

- ``files``: atomic writes (``atomic_open``, ``write_json``), and reads of regular files only, bounded in size and
  depth (``open_regular``, ``read_regular``, ``read_json``);
- ``folders``: output folders (``claim_folder``, ``OutputFolder``, the manifest ``.biasaudit.json``) and the
  temporary entries a crash leaves (``clean_stale_temps``);
- ``locks``: one run at a time per output folder (``lock_folder``).

Every name is importable from ``biasaudit.io`` as before the split.
"""
from __future__ import annotations

from .files import (MAX_DATA_BYTES, MAX_JSON_DEPTH, MAX_RECORD_BYTES, MAX_RESULT_BYTES, atomic_open,
                    atomic_write_bytes, atomic_write_text, open_regular, parse_json, public_mode, read_json,
                    read_regular, regular_file, sha256_file, to_json, write_json)
from .folders import (MANIFEST, STALE_SECONDS, OutputFolder, check_writable, claim_folder, clean_stale_temps,
                      make_temp_dir, read_manifest, same_config)
from .locks import LOCKED_KINDS, lock_folder, lock_path

__all__ = ["LOCKED_KINDS", "MANIFEST", "MAX_DATA_BYTES", "MAX_JSON_DEPTH", "MAX_RECORD_BYTES", "MAX_RESULT_BYTES",
           "STALE_SECONDS", "OutputFolder", "atomic_open", "atomic_write_bytes", "atomic_write_text",
           "check_writable", "claim_folder", "clean_stale_temps", "lock_folder", "lock_path", "make_temp_dir",
           "open_regular", "parse_json", "public_mode", "read_json", "read_manifest", "read_regular",
           "regular_file", "same_config", "sha256_file", "to_json", "write_json"]
