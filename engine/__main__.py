from engine.cli.main import app

app(prog_name="amp")
