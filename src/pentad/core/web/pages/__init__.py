"""Server-rendered pages: the page kit (`kit`, what every page of the core or an app uses) and the core's
own pages (`signin`, `account`, `admin`, `docs`), mounted with the apps' pages by `site.install_pages`.
Nothing is imported here, so an app importing the kit loads none of the core's pages."""
