from moonbase.cli import main

main()
