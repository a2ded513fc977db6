from wit_world import exports

class Run(exports.Run):
    async def run(self) -> None:
        print("Hello, world!")
