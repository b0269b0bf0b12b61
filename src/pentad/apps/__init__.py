"""The installed apps: name -> module whose `APP` attribute is its AppSpec."""

INSTALLED: dict[str, str] = {}
