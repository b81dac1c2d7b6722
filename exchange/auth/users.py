"""Users of the web interface: email + password (hashed with scrypt via werkzeug)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import Conflict, ValidationFailed
from ..models import User, utcnow

MIN_PASSWORD = 8


def create_user(session: Session, account_id: str, email: str, password: str) -> User:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise ValidationFailed("Invalid email.", errors={"email": ["Not a valid email address."]})
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed("Password too short.",
                               errors={"password": [f"At least {MIN_PASSWORD} characters."]})
    if session.scalar(select(User).where(func.lower(User.email) == email)):
        raise Conflict("A user with this email already exists.")
    user = User(account_id=account_id, email=email, password_hash=generate_password_hash(password))
    session.add(user)
    session.flush()
    return user


def check_login(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        # spend comparable time so a missing user is not distinguishable by timing
        check_password_hash(generate_password_hash("x"), password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = utcnow()
    return user
