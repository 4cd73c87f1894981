"""wsd-web: the browser app, its static server and a headless runner."""
