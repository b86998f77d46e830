from flux_api import create_app_or_exit

# gunicorn's workers import this: their master has checked the settings and Redis at its start
# (gunicorn.conf.py), and a worker replaced while Redis is away must still boot.
app = create_app_or_exit(check_connections=False)
