"""Teams from TEAMS_FILE, and the people-safe activity counted by team."""
