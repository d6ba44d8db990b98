"""A tiny worker that runs SQL sent to it against env.DB (for cfemu's D1 tests)."""

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        body = await request.json()
        stmt = self.env.DB.prepare(body["sql"]).bind(*body.get("params", []))
        mode = body.get("mode", "all")
        try:
            if mode == "first":
                result = await stmt.first(body.get("column"))
            elif mode == "raw":
                result = await stmt.raw(columnNames=body.get("columnNames", False))
            elif mode == "batch":
                stmts = [self.env.DB.prepare(s) for s in body["batch"]]
                result = await self.env.DB.batch(stmts)
            else:
                result = await getattr(stmt, mode)()
        except Exception as e:
            return Response.json({"error": str(e)}, status=500)
        return Response.json({"result": result})
