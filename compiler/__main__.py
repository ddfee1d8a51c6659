from sglangc.cli import main

main()
