"""Type stub for the C++ extension module built from bindings/ (see CMakeLists.txt)."""

def build_info() -> dict[str, str | bool]:
    """version, compiler_id, compiler_version, cxx_standard, build_type (str); werror (bool)."""

def set_log_level(name: str) -> None:
    """Raises ValueError naming the valid levels for an unknown name."""

def log_level() -> str: ...
def log(level: str, message: str) -> None:
    """Writes ``tensorfusion[native] LEVEL: message`` to stderr if ``level`` is enabled."""

def init_log_from_env() -> str:
    """Reads TF_LOG_LEVEL; returns "" or an error message (the level then falls back to info)."""
