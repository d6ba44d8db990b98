"""A small producer/consumer app: POST /orders enqueues, the consumer records what it processed."""

from workers import Response, WorkerEntrypoint

processed = []  # bodies this process handled (the test reads it through rt.worker_module)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.method == "POST":
            order = await request.json()
            await self.env.ORDERS.send(order, delaySeconds=order.get("delay", 0))
            return Response.json({"queued": order["id"]}, status=202)
        return Response.json(processed)

    async def queue(self, batch):
        for message in batch.messages:
            if message.body.get("fail_first") and message.attempts == 1:
                message.retry(delaySeconds=10)
                continue
            processed.append({"id": message.body["id"], "attempts": message.attempts})
            message.ack()
