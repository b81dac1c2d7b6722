"""The pages' blueprint, apart from the package so page modules import it without a cycle."""
from __future__ import annotations

from flask import Blueprint

web = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                static_url_path="/ui/static")
