"""Any other console path: a page saying so (not the API's JSON 404)."""

from __future__ import annotations

from starlette.responses import Response

from moonbase.console.pages import PREFIX, AnyPage, console_router

router = console_router()


@router.get("/{rest:path}")
async def not_found(page: AnyPage, rest: str) -> Response:
    if not rest:  # /console/
        return page.redirect(PREFIX)
    return page.render("error.html", status=404, message=page.t("error.page_not_found"))
