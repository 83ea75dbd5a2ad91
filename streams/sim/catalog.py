"""The simulated product's catalogue: event names, pages, features, plans, countries, habits.

These are the names other parts of the pipeline are configured with (core actions, the
heartbeat event, feature mapping), so they live in one place and the simulator, its tests and
its documentation read them from here. They describe a made-up B2B analytics product, not the
pipeline itself, which is why they are not pipeline settings in ``config.py``.
"""

from __future__ import annotations

from streams.config import MS_PER_HOUR, MS_PER_MINUTE

#: Core actions: what an engaged user of the simulated product does (issue 4's default set).
CORE_ACTIONS = ("report_created", "dashboard_shared", "invite_sent", "export_completed")
#: The feature each core action exercises (None: not tied to a feature).
CORE_ACTION_FEATURE = {"report_created": "reports", "dashboard_shared": "dashboards",
                       "invite_sent": None, "export_completed": "exports"}
#: Track event naming a feature in ``properties.feature``.
FEATURE_EVENT = "feature_used"
#: Features, with the share of users who ever adopt each one: a product team should see
#: reports and dashboards carry the product while ``api`` is a candidate to retire.
FEATURE_ADOPTION = {"reports": 0.9, "dashboards": 0.8, "alerts": 0.45, "exports": 0.35,
                    "integrations": 0.2, "api": 0.08}
FEATURES = tuple(FEATURE_ADOPTION)
#: Heartbeat sent every ~30-60 s while the user is active (Snowplow's page ping).
HEARTBEAT_EVENT = "page_ping"
#: Negative intent a churning user shows while drifting away.
NEGATIVE_EVENTS = ("cancel_intent", "downgrade_clicked")
#: An escalation: the user asked support for help.
ESCALATION_EVENT = "support_ticket_opened"
#: Onboarding of a user who joins during the simulated period.
SIGNUP_EVENT = "signup_completed"
ONBOARDING_EVENT = "onboarding_step_completed"
ONBOARDING_STEPS = 5

#: Pages (web: ``page`` events; mobile: ``screen`` events) and where users land first.
#: Pages with how often users move to them (relative integer weights: billing is rare).
PAGE_WEIGHTS = {"home": 8, "dashboard": 12, "reports": 10, "report_editor": 6, "alerts": 4, "exports": 3,
                "team": 2, "settings": 2, "integrations": 2, "billing": 1}
PAGES = tuple(PAGE_WEIGHTS)
#: Each page repeated by its weight: a uniform pick from this is a weighted pick of a page.
PAGE_DECK = tuple(page for page, weight in PAGE_WEIGHTS.items() for _ in range(weight))
ENTRY_PAGES = ("home", "dashboard", "reports")
#: The page a feature lives on (a user using a feature is on its page).
FEATURE_PAGE = {"reports": "report_editor", "dashboards": "dashboard", "alerts": "alerts",
                "exports": "exports", "integrations": "integrations", "api": "settings"}

#: Plans, smallest first: an account's plan follows its size.
PLANS = ("free", "team", "business", "enterprise")
#: Platforms and their share; web sends ``page`` events, mobile apps ``screen`` events.
PLATFORMS = {"web": 0.7, "ios": 0.15, "android": 0.15}
#: Countries: share of accounts and UTC offset (no daylight saving: good enough to spread
#: activity around the clock the way a global product sees it).
COUNTRIES = {"US": (0.33, -5.0), "CA": (0.05, -5.0), "BR": (0.06, -3.0), "GB": (0.12, 0.0),
             "DE": (0.12, 1.0), "FR": (0.07, 1.0), "NL": (0.04, 1.0), "IN": (0.08, 5.5),
             "JP": (0.06, 9.0), "AU": (0.07, 10.0)}
COUNTRY_OFFSET_MS = {code: int(offset * MS_PER_HOUR) for code, (_, offset) in COUNTRIES.items()}
#: The largest positive UTC offset: a local day starts at most this long before its UTC day.
MAX_AHEAD_MS = max(COUNTRY_OFFSET_MS.values())

#: When, in local time, sessions start (relative weights per hour 0..23): a working-day product.
START_HOUR_WEIGHTS = (0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 1.0, 3.0, 5.0, 6.0, 6.0,
                      4.0, 5.0, 6.0, 6.0, 5.0, 4.0, 2.0, 1.5, 1.5, 1.2, 0.8, 0.4)

#: Sessions: heartbeat interval, idle pauses inside a session (kept under the 30 min timeout),
#: the gap the simulator leaves between sessions (over it), and the session length bounds.
PING_MS = (30_000, 60_000)
IDLE_PAUSE_MS = (2 * MS_PER_MINUTE, 20 * MS_PER_MINUTE)
SESSION_GAP_MS = 31 * MS_PER_MINUTE
SESSION_MS = (MS_PER_MINUTE, 150 * MS_PER_MINUTE)

ACCOUNT_WORDS = (("Acme", "Blue", "Bright", "Cobalt", "Delta", "Evergreen", "Granite", "Harbor",
                  "Lumen", "Maple", "Northwind", "Orbit", "Pioneer", "Quartz", "Summit", "Vertex"),
                 ("Analytics", "Labs", "Logistics", "Media", "Health", "Retail", "Systems", "Foods",
                  "Capital", "Robotics", "Energy", "Studios", "Travel", "Networks", "Bank", "Works"))
