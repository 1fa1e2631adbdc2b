"""ecrf: electronic case report forms and data capture for clinical trials."""

from __future__ import annotations

from flask import Flask

from ecrf.config import PROJECT_ROOT, load_config

__version__ = "0.1.0"


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    load_config(app, test_config)
    if app.config.get("ARGON2_TIME_COST"):
        from ecrf.accounts.passwords import configure_hasher

        configure_hasher(time_cost=app.config["ARGON2_TIME_COST"],
                         memory_cost=app.config["ARGON2_MEMORY_COST"],
                         parallelism=app.config.get("ARGON2_PARALLELISM", 1))

    # Every model registered with the metadata, whichever area is used first.
    import ecrf.accounts.models  # noqa: F401
    import ecrf.allocation.models  # noqa: F401
    import ecrf.capture.models  # noqa: F401
    import ecrf.jobs.models  # noqa: F401
    import ecrf.models.audit  # noqa: F401
    import ecrf.review.models  # noqa: F401
    import ecrf.safety.models  # noqa: F401
    import ecrf.studies.models  # noqa: F401
    from ecrf.extensions import babel, csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), compare_type=True,
                     render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)

    from flask_bootstrap import Bootstrap5

    Bootstrap5(app)

    from ecrf.accounts import web

    babel.init_app(app, locale_selector=web.select_locale, timezone_selector=web.select_timezone)

    from ecrf import (
        accounts,
        allocation,
        api,
        capture,
        dashboards,
        demo,
        jobs,
        outputs,
        review,
        safety,
        studies,
    )

    studies.register(app)
    accounts.register(app)
    app.register_blueprint(api.bp)
    capture.register(app)

    # Review's reactions to data capture run before safety's: a missing receiver fails
    # here, at start-up.
    review.register(app)
    safety.register(app)
    allocation.register(app)
    dashboards.register(app)
    jobs.register(app)
    outputs.register(app)
    demo.register(app)

    from ecrf.cli import register_commands

    register_commands(app)

    return app
