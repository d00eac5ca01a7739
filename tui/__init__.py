"""The Claw Hub TUI: humans join a Claw Group as participants (Textual)."""
