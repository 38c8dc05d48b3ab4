"""Pictures and sound of a piece: piano-roll plots and WAV rendering."""
