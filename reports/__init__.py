"""Report generation: result records (JSON lines) in, HTML/JSON/Markdown reports out."""
