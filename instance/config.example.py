# Copy to instance/config.py. Environment variables ECRF_<NAME> override these values.

# PostgreSQL in production (psycopg 3 driver is used automatically):
# DATABASE_URL = "postgresql://ecrf:secret@db.example.org:5432/ecrf"

# Password policy and sessions (21 CFR 11.300).
# PASSWORD_MIN_LENGTH = 12
# PASSWORD_MAX_AGE_DAYS = 180      # 0 disables password ageing
# LOCKOUT_THRESHOLD = 5
# LOCKOUT_MINUTES = 15
# SESSION_IDLE_MINUTES = 30
# SESSION_ABSOLUTE_HOURS = 12

# Behind a reverse proxy that terminates HTTPS and sets X-Forwarded-Proto:
# PROXY_FIX = True
# FORCE_HTTPS_COOKIES = True
