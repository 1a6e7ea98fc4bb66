"""RenderEmail: load the template from S3 (cached by object version) and render it.

Input: the normalised request. Output: ``{subject, html, text, from, templateVersion, topic}``.
Raises ``TemplateNotFound`` or ``TemplateRenderError`` (the machine records ``failed``).
"""

from __future__ import annotations

from typing import Any

from sesflow_core.request import SendRequest

from ._common import Settings, logger
from .templates import load_template


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    request = SendRequest.from_dict(event)
    logger.append_keys(emailId=request.emailId, template=request.template)
    template = load_template(settings.templates_bucket, request.template, settings.template_cache_ttl)
    rendered = template.render(request.data, request.topic)
    logger.info("rendered", extra={"templateVersion": rendered.template_version})
    return rendered.to_dict()
