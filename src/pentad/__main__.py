from pentad.cli import main

main()
