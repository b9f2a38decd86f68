"""Jinja2 files: message templates (sms/, email/) and the staff pages (web/), installed as data."""
