from batchpress.cli.main import app

app(prog_name="batchpress")
