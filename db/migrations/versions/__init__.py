"""pgbell's migrations, one file each, never edited once released."""
