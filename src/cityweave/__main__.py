from cityweave.cli.main import app

app()
