"""The calculator in a browser (``traincost serve``): a FastAPI app (:mod:`traincost.web.app`) whose JSON API
answers what the CLI's ``--json`` prints (:mod:`traincost.web.service`), and a page shipped in ``static/``."""
