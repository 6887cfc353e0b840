"""The HTTP (and command-line) front doors of hearme; they translate, never decide."""
