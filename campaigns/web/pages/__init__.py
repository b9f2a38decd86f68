"""The French staff pages: server-rendered with aiohttp-jinja2, a little vendored JavaScript."""
