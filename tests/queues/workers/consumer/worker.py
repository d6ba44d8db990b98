"""A worker that produces to and consumes from queues; tests steer its consumer through `Default.behaviour`."""

import inspect

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    # Set by tests (class attributes are shared by every instance the runtime creates per event).
    behaviour = None  # callable(batch, env) -> None | awaitable; may raise
    deliveries = []  # (queue, [(id, body, attempts), ...]) per delivered batch

    async def fetch(self, request):
        # POST /send {"binding", "body", "contentType"?, "delaySeconds"?}; POST /batch {"binding", "messages", "delaySeconds"?}
        data = await request.json()
        queue = getattr(self.env, data["binding"])
        try:
            if request.url.endswith("/batch"):
                options = {"delaySeconds": data["delaySeconds"]} if "delaySeconds" in data else {}
                await queue.sendBatch(data["messages"], **options)
            else:
                options = {k: data[k] for k in ("contentType", "delaySeconds") if k in data}
                await queue.send(data["body"], **options)
        except Exception as e:
            return Response(str(e), status=400, headers={"x-error": type(e).__name__})
        return Response("sent")

    async def queue(self, batch):
        Default.deliveries.append((batch.queue, [(m.id, m.body, m.attempts) for m in batch.messages]))
        if Default.behaviour is not None:
            result = Default.behaviour(batch, self.env)
            if inspect.isawaitable(result):
                await result
