"""Workers Analytics Engine: the `writeDataPoint` binding and the SQL API, on DuckDB.

`AnalyticsService` is the runtime's service for `[[analytics_engine_datasets]]`; `service.query(sql)`
answers Analytics Engine SQL from Python, `cfemu.analytics.http.handle_sql` over HTTP and
`cfemu analytics query` from the command line.
"""

from .dataset import AnalyticsEngineDataset
from .engine import run_query
from .errors import AnalyticsQueryError
from .service import AnalyticsService
from .storage import AnalyticsStore

__all__ = ["AnalyticsService", "AnalyticsEngineDataset", "AnalyticsQueryError", "AnalyticsStore", "run_query"]
