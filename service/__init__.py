"""Domain logic of hearme: plain Python over a SQLModel session, no HTTP."""
