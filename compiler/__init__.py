"""sglangc: compile a TOML description of SGLang servers into bash and supervisord artifacts."""

__version__ = "0.1.0"
