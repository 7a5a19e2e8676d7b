from moonbase.cli import app

app(prog_name="moonbase")
