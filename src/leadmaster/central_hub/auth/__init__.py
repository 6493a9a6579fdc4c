"""Who is calling: users (password → JWT) and systems (API keys), and what they may touch."""
