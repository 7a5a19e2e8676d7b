"""The console's one message catalogue: every string a page shows, in English
and Simplified Chinese, by key. ``{name}`` placeholders are filled by
``Translator`` (i18n.py); both languages of a key take the same ones
(tests/console/test_catalogue.py checks it, and that every key a template or
route names is here).

Keys are grouped by page (``keys.*``, ``projects.*``) with shared ones in
``common.*``, ``field.*`` (form fields, also used to name the field an error
is about: ``field.<param>``), ``error.*``, ``nav.*`` and ``role.*``."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    # Navigation and layout
    "nav.skip": ("Skip to content", "跳到正文"),
    "nav.label": ("Console", "控制台"),
    "nav.overview": ("Overview", "概览"),
    "nav.projects": ("Projects", "项目"),
    "nav.keys": ("API keys", "API 密钥"),
    "nav.operator": ("Platform operator", "平台运维"),
    "nav.playground": ("Playground", "体验中心"),
    "nav.orgs": ("Organizations", "组织管理"),
    "nav.engines": ("Engines", "推理引擎"),
    "nav.audit": ("Audit log", "审计日志"),
    "nav.organization": ("Organization", "组织"),
    "nav.language": ("Language", "语言"),
    "nav.switch_language": ("Switch", "切换"),
    # Roles
    "role.owner": ("owner", "所有者"),
    "role.admin": ("admin", "管理员"),
    "role.member": ("member", "成员"),
    "role.viewer": ("viewer", "只读成员"),
    "role.operator": ("platform operator", "平台运维"),
    "project_role.owner": ("project owner", "项目负责人"),
    "project_role.member": ("project member", "项目成员"),
    # Shared words
    "common.never": ("never", "从未"),
    "common.optional": ("optional", "可选"),
    "common.save": ("Save", "保存"),
    "common.show": ("Show", "显示"),
    "common.actions": ("Actions", "操作"),
    # Form fields (also the param an error names)
    "field.email": ("Email", "邮箱"),
    "field.password": ("Password", "密码"),
    "field.user_name": ("Your name", "您的姓名"),
    "field.name": ("Name", "名称"),
    "field.project": ("Project", "项目"),
    "field.project_id": ("Project", "项目"),
    "field.key_id": ("API key", "API 密钥"),
    "field.user_id": ("Person", "成员"),
    "field.role": ("Role", "角色"),
    "field.model": ("Model", "模型"),
    "field.expires_at": ("Expires", "过期时间"),
    "field.allowed_ips": ("Allowed IP addresses or networks", "允许的 IP 地址或网段"),
    "field.allowed_models": ("Allowed models", "允许的模型"),
    "field.daily_budget": ("Daily budget", "每日预算"),
    "field.monthly_budget": ("Monthly budget", "每月预算"),
    "field.grace_s": ("Grace period", "旧密钥保留时间"),
    # Errors: what went wrong and what to do
    "error.title": ("Something needs fixing", "需要处理的问题"),
    "error.back": ("Back to the overview", "返回概览"),
    "error.csrf": (
        "This form has expired or did not come from this console. Reload the page and try again.",
        "此表单已过期，或并非来自本控制台。请刷新页面后重试。",
    ),
    "error.forbidden": (
        "Your role ({role}) does not allow this. Ask an owner or admin of the organization.",
        "您的角色（{role}）无权执行此操作。请联系组织的所有者或管理员。",
    ),
    "error.not_found": (
        "That no longer exists, or you cannot see it. Check the link or go back to the list.",
        "该内容不存在，或您无权查看。请检查链接或返回列表。",
    ),
    "error.page_not_found": (
        "There is no such page. Use the navigation to find what you need.",
        "没有这个页面。请使用导航查找所需内容。",
    ),
    "error.throttled": (
        "Too many failed sign-ins for this email. Wait {minutes} min and try again, or ask "
        "the operator to reset your password.",
        "此邮箱登录失败次数过多。请等待 {minutes} 分钟后重试，或请平台运维重置密码。",
    ),
    "error.credentials": (
        "Wrong email or password. Check both and try again.",
        "邮箱或密码错误。请检查后重试。",
    ),
    "error.invalid_field": ("{field}: {detail}", "{field}：{detail}"),
    "error.invalid": ("{detail}", "{detail}"),
    "error.unexpected": (
        "Something went wrong on our side. Try again in a moment.",
        "服务器出现问题，请稍后重试。",
    ),
    # Sign in and out
    "auth.sign_in": ("Sign in", "登录"),
    "auth.sign_in_title": ("Sign in to moonbase", "登录 moonbase"),
    "auth.sign_out": ("Sign out", "退出登录"),
    "auth.sign_out_everywhere": ("Sign out everywhere", "退出所有设备"),
    "auth.session_ended": (
        "Your session has ended. Sign in again to continue.",
        "您的会话已结束，请重新登录。",
    ),
    "auth.signed_out": ("You are signed out.", "您已退出登录。"),
    "auth.first_start_hint": (
        "First start? The operator's password was printed once by moonbase serve "
        "(or set MOONBASE_USERS__OPERATOR_PASSWORD).",
        "首次启动？平台运维的密码已由 moonbase serve 打印一次"
        "（也可通过 MOONBASE_USERS__OPERATOR_PASSWORD 设置）。",
    ),
    # Invitations
    "invite.title": ("Join an organization", "加入组织"),
    "invite.code": ("Invitation code", "邀请码"),
    "invite.code_hint": (
        "Filled in from your invitation link (it starts with inv-).",
        "已从邀请链接自动填写（以 inv- 开头）。",
    ),
    "invite.signed_in": (
        "You are signed in: accepting adds this account to the organization.",
        "您已登录：接受邀请会将当前账号加入该组织。",
    ),
    "invite.password": ("Choose a password", "设置密码"),
    "invite.password_hint": (
        "At least 10 characters. Already have an account? Sign in first, then open the "
        "invitation link again.",
        "至少 10 个字符。已有账号？请先登录，再重新打开邀请链接。",
    ),
    "invite.accept": ("Accept the invitation", "接受邀请"),
    "invite.sign_in_first": (
        "This email already has an account: sign in with it, then open the invitation link again.",
        "此邮箱已有账号：请先用它登录，再重新打开邀请链接。",
    ),
    "invite.unavailable": (
        "This invitation is not valid any more (used, withdrawn or expired). Ask for a new one.",
        "此邀请已失效（已使用、已撤回或已过期）。请索取新的邀请。",
    ),
    # Organisations
    "org.choose": ("Choose an organization", "选择组织"),
    "org.choose_hint": ("You belong to several. Which one?", "您属于多个组织，请选择一个："),
    "org.open": ("Open", "进入"),
    "org.none": ("You are not in any organization yet.", "您还不属于任何组织。"),
    "org.none_next": (
        "Ask an owner or admin to invite you, then open the link in the invitation.",
        "请组织的所有者或管理员邀请您，然后打开邀请中的链接。",
    ),
    # Overview
    "overview.title": ("Overview", "概览"),
    "overview.summary": ("Balance and spend", "余额与消费"),
    "overview.available": ("Available balance", "可用余额"),
    "overview.cash": ("Cash balance", "现金余额"),
    "overview.voucher": ("Voucher balance", "代金券余额"),
    "overview.spent_month": ("Spent this month", "本月消费"),
    "overview.requests_today": ("Requests today (UTC)", "今日请求数（UTC）"),
    "overview.no_funds": (
        "The balance is used up: requests are refused until the operator tops it up.",
        "余额已用完：在平台运维充值之前，请求将被拒绝。",
    ),
    "overview.chart_title": (
        "Requests by model, {first} – {last}",
        "各模型请求数，{first} – {last}",
    ),
    "overview.chart_alt": (
        "Requests per day by model over the last 30 days; the table below has the totals.",
        "最近 30 天每天各模型的请求数；总数见下表。",
    ),
    "overview.chart_axis": ("requests", "请求数"),
    "overview.chart_day": ("Day", "日期"),
    "overview.by_model": ("Last 30 days by model", "最近 30 天（按模型）"),
    "overview.no_usage": ("No requests in the last 30 days.", "最近 30 天没有请求。"),
    "overview.no_usage_next": (
        "Create an API key, then call the API with it (any OpenAI SDK works): requests "
        "show up here within seconds.",
        "创建一个 API 密钥，然后用它调用 API（任何 OpenAI SDK 均可）：请求会在几秒内显示在这里。",
    ),
    "overview.create_key": ("Create an API key", "创建 API 密钥"),
    # Usage figures
    "usage.requests": ("Requests", "请求数"),
    "usage.input_tokens": ("Input tokens", "输入 tokens"),
    "usage.cached_tokens": ("Cached tokens", "缓存 tokens"),
    "usage.output_tokens": ("Output tokens", "输出 tokens"),
    "usage.cost": ("Cost", "费用"),
    # Projects
    "projects.title": ("Projects", "项目"),
    "projects.created": ("Created", "创建时间"),
    "projects.spent_today": ("Spent today", "今日消费"),
    "projects.spent_month": ("Spent this month", "本月消费"),
    "projects.no_budget": ("no budget", "无预算"),
    "projects.none": ("You are not in any project yet.", "您还没有加入任何项目。"),
    "projects.none_next": (
        "Create a project below: it gets its own keys, budgets and people.",
        "在下方创建项目：每个项目有自己的密钥、预算和成员。",
    ),
    "projects.none_member": (
        "Ask an owner or admin of the organization to add you to a project.",
        "请组织的所有者或管理员将您加入项目。",
    ),
    "projects.create": ("Create a project", "创建项目"),
    "projects.create_button": ("Create project", "创建项目"),
    "project.keys_link": ("This project's API keys", "本项目的 API 密钥"),
    "project.budgets": ("Budgets", "预算"),
    "project.spent": (
        "Spent today: {today} · this month: {month}",
        "今日已消费：{today} · 本月：{month}",
    ),
    "project.budget_hint": (
        "Leave a budget empty for none. Requests over a budget are refused (429) until "
        "the next UTC day or month.",
        "留空表示不设预算。超出预算的请求会被拒绝（429），直到下一个 UTC 日或月。",
    ),
    "project.members": ("People", "成员"),
    "project.no_members": ("Nobody is in this project yet.", "此项目还没有成员。"),
    "project.no_members_next": (
        "Add people of the organization below: project members create their own keys.",
        "在下方添加组织成员：项目成员可以创建自己的密钥。",
    ),
    "project.add_person": ("Add", "添加"),
    "project.add": ("Add to project", "加入项目"),
    "project.remove": ("Remove", "移除"),
    "project.remove_confirm": (
        "Remove {email} from this project? The keys they made for it stop working.",
        "将 {email} 移出此项目？其为本项目创建的密钥将失效。",
    ),
    "project.models": ("Models", "模型"),
    "project.models_hint": (
        "Which models this project's keys may use",
        "本项目的密钥可以使用哪些模型",
    ),
    "project.models_any": ("Any model", "任意模型"),
    "project.models_only": ("Only the models checked below", "仅限下方勾选的模型"),
    "project.done_created": ("Project created.", "项目已创建。"),
    "project.done_budgets": ("Budgets saved.", "预算已保存。"),
    "project.done_member": ("Added to the project.", "已加入项目。"),
    "project.done_removed": ("Removed from the project.", "已移出项目。"),
    "project.done_models": ("Models saved.", "模型设置已保存。"),
    # API keys
    "keys.title": ("API keys", "API 密钥"),
    "keys.all_projects": ("All projects", "全部项目"),
    "keys.status": ("Status", "状态"),
    "keys.status_active": ("active", "可用"),
    "keys.status_disabled": ("disabled", "已停用"),
    "keys.last_used": ("Last used", "最近使用"),
    "keys.allowlists": ("Allowed from / models", "允许的来源 / 模型"),
    "keys.any_address": ("any address", "任意地址"),
    "keys.any_model": ("any model", "任意模型"),
    "keys.no_expiry": ("never", "永不过期"),
    "keys.unnamed": ("(no name)", "（未命名）"),
    "keys.read_only": ("read only", "只读"),
    "keys.disable": ("Disable", "停用"),
    "keys.enable": ("Enable", "启用"),
    "keys.rotate": ("Rotate", "轮换"),
    "keys.grace": ("Old secret keeps working for", "旧密钥继续有效"),
    "keys.grace_0": ("old secret stops now", "旧密钥立即失效"),
    "keys.grace_3600": ("old secret works 1 more hour", "旧密钥再保留 1 小时"),
    "keys.grace_86400": ("old secret works 1 more day", "旧密钥再保留 1 天"),
    "keys.grace_604800": ("old secret works 7 more days", "旧密钥再保留 7 天"),
    "keys.revoke": ("Revoke", "吊销"),
    "keys.revoke_confirm": (
        "Revoke {name}? Programs using it stop working at once; this cannot be undone.",
        "吊销 {name}？使用它的程序将立即失效，且无法撤销。",
    ),
    "keys.none": ("No API keys here yet.", "这里还没有 API 密钥。"),
    "keys.none_next": (
        "Create one below, then use it as the OpenAI SDK's api_key with base_url ending in /v1.",
        "在下方创建一个，然后将其作为 OpenAI SDK 的 api_key 使用，base_url 以 /v1 结尾。",
    ),
    "keys.none_read_only": (
        "Your role cannot create keys: ask an owner or admin, or to be added to a project.",
        "您的角色无法创建密钥：请联系所有者或管理员，或申请加入某个项目。",
    ),
    "keys.create": ("Create an API key", "创建 API 密钥"),
    "keys.create_button": ("Create key", "创建密钥"),
    "keys.name_hint": ("what it is for, e.g. ci-bot", "用途，例如 ci-bot"),
    "keys.models_hint": ("none checked: any model", "不勾选：任意模型"),
    "keys.created_title": ("Your new API key", "您的新 API 密钥"),
    "keys.rotated_title": ("The key's new secret", "密钥的新值"),
    "keys.shown_once": (
        "Copy it now: this is the only time it is shown. moonbase keeps only a hash.",
        "请立即复制：密钥只显示这一次，moonbase 只保存其哈希值。",
    ),
    "keys.secret_label": ("Secret of {name}", "{name} 的密钥"),
    "keys.copy": ("Copy", "复制"),
    "keys.copied": ("Copied", "已复制"),
    "keys.use_hint": (
        "Use it as a bearer token, or as api_key in any OpenAI SDK:",
        "将其用作 Bearer token，或在任何 OpenAI SDK 中用作 api_key：",
    ),
    "keys.done": ("I have copied it", "我已复制"),
    # Playground
    "playground.title": ("Playground", "体验中心"),
    "playground.intro": (
        "Try a model here: the project you choose pays, as a call with one of its keys would, "
        "and the request shows in its usage.",
        "在这里试用模型：费用由所选项目支付，与使用该项目的密钥调用相同，请求会计入其用量。",
    ),
    "playground.noscript": (
        "The playground needs JavaScript: turn it on, or call the API with a key.",
        "体验中心需要 JavaScript：请启用它，或使用密钥调用 API。",
    ),
    "playground.project": ("Project that pays", "付费项目"),
    "playground.project_hint": (
        "Its budgets, allowed models and rate limits apply.",
        "该项目的预算、允许的模型和速率限制均适用。",
    ),
    "playground.context": ("Context", "上下文"),
    "playground.cap_thinking_always": ("always thinks", "始终思考"),
    "playground.cap_thinking_default": ("thinks by default", "默认思考"),
    "playground.cap_no_thinking": ("no thinking", "不思考"),
    "playground.cap_image": ("images", "图片"),
    "playground.cap_video": ("video", "视频"),
    "playground.cap_tools": ("tools", "工具调用"),
    "playground.system": ("System prompt", "系统提示词"),
    "playground.system_hint": (
        "e.g. You are Kimi, a concise assistant.",
        "例如：你是 Kimi，一个简洁的助手。",
    ),
    "playground.user": ("Message", "消息"),
    "playground.user_hint": ("Ask something…", "输入您的问题…"),
    "playground.image": ("Image", "图片"),
    "playground.image_hint": (
        "For models that read images (PNG, JPEG, WebP or GIF, at most 10 MB); sent in the "
        "message as a data URL.",
        "适用于可读取图片的模型（PNG、JPEG、WebP 或 GIF，最大 10 MB）；以 data URL 放入消息发送。",
    ),
    "playground.image_unsupported": (
        "This model does not read images: choose one that lists images.",
        "此模型不读取图片：请选择标有“图片”的模型。",
    ),
    "playground.image_too_large": (
        "The image is larger than 10 MB: choose a smaller one.",
        "图片超过 10 MB：请选择更小的图片。",
    ),
    "playground.options": ("Options: length, JSON, tools", "选项：长度、JSON、工具"),
    "playground.max_tokens": ("Most tokens in the answer", "回答的最大 tokens"),
    "playground.format": ("Answer format", "回答格式"),
    "playground.format_text": ("Text", "文本"),
    "playground.format_json_object": ("JSON (any object)", "JSON（任意对象）"),
    "playground.format_json_schema": ("JSON following a schema", "符合 Schema 的 JSON"),
    "playground.schema": ("JSON schema", "JSON Schema"),
    "playground.schema_hint": (
        "An object with name and schema, as response_format.json_schema takes it.",
        "一个包含 name 和 schema 的对象，与 response_format.json_schema 的格式相同。",
    ),
    "playground.tools": ("Tools (JSON)", "工具（JSON）"),
    "playground.tools_hint": (
        "A JSON list of tools, as the API's tools field takes it.",
        "工具的 JSON 列表，格式与 API 的 tools 字段相同。",
    ),
    "playground.tokens": ("Prompt: {count} tokens", "提示词：{count} tokens"),
    "playground.tokens_unknown": (
        "Prompt: tokens are counted as you type",
        "提示词：输入时自动计算 tokens",
    ),
    "playground.send": ("Send", "发送"),
    "playground.stop": ("Stop", "停止"),
    "playground.stopped": ("Stopped.", "已停止。"),
    "playground.thinking": ("Thinking", "思考过程"),
    "playground.answer": ("Answer", "回答"),
    "playground.tool_calls": ("Tool calls", "工具调用"),
    "playground.usage": (
        "{prompt} prompt + {completion} answer = {total} tokens, charged to the project.",
        "提示词 {prompt} + 回答 {completion} = {total} tokens，已计入所选项目。",
    ),
    "playground.finish": ("Finished: {reason}", "结束原因：{reason}"),
    "playground.code": ("View code", "查看代码"),
    "playground.code_hint": (
        "The same request with an API key: set MOONSHOT_API_KEY to one of this project's keys.",
        "使用 API 密钥发送相同的请求：将 MOONSHOT_API_KEY 设为本项目的某个密钥。",
    ),
    "playground.bad_tools": (
        "Tools: not a JSON list. Check the brackets and quotes.",
        "工具：不是 JSON 列表。请检查括号和引号。",
    ),
    "playground.bad_schema": (
        "JSON schema: not a JSON object. Check the brackets and quotes.",
        "JSON Schema：不是 JSON 对象。请检查括号和引号。",
    ),
    "playground.empty_message": ("Write a message first.", "请先输入消息。"),
    "playground.network_error": (
        "The answer was cut off (the connection dropped). Try again.",
        "回答中断（连接已断开）。请重试。",
    ),
    "playground.try_later": (
        "Too many requests right now: try again in {seconds} s.",
        "当前请求过多：请在 {seconds} 秒后重试。",
    ),
    "playground.no_funds": (
        "Nothing left to spend ({detail}). Ask the operator for a top-up, or an owner to "
        "raise the project's budget.",
        "没有可用额度（{detail}）。请联系平台运维充值，或请所有者提高项目预算。",
    ),
    "playground.engine_error": (
        "The model could not answer ({detail}). Try again in a moment.",
        "模型无法回答（{detail}）。请稍后重试。",
    ),
    "playground.no_projects": (
        "You are in no project you can spend from.",
        "您没有可以付费使用的项目。",
    ),
    "playground.no_projects_next": (
        "Ask an owner or admin of the organization to add you to a project.",
        "请组织的所有者或管理员将您加入项目。",
    ),
    "playground.viewer": (
        "Your role (viewer) cannot spend the organization's money.",
        "您的角色（只读成员）不能使用组织的余额。",
    ),
    "playground.viewer_next": (
        "Ask an owner or admin for the member role in a project to use the playground.",
        "请所有者或管理员授予您项目成员角色，以使用体验中心。",
    ),
    "playground.no_models": ("No model is served here.", "此处没有提供任何模型。"),
    "playground.no_models_next": (
        "The operator enables models in the settings (models.<id>.enabled).",
        "平台运维可在设置中启用模型（models.<id>.enabled）。",
    ),
    # Organisations (operator)
    "field.amount": ("Amount", "金额"),
    "field.reason": ("Reason", "原因"),
    "field.kind": ("Kind", "类型"),
    "field.tier": ("Tier", "等级"),
    "field.concurrency": ("Concurrent requests", "并发请求数"),
    "field.rpm": ("Requests per minute", "每分钟请求数"),
    "field.tpm": ("Tokens per minute", "每分钟 tokens"),
    "field.tpd": ("Tokens per day", "每日 tokens"),
    "field.before": ("Page", "页码"),
    "orgs.title": ("Organizations", "组织管理"),
    "orgs.cash": ("Cash", "现金余额"),
    "orgs.voucher": ("Vouchers", "代金券余额"),
    "orgs.topped_up": ("Topped up in all", "累计充值"),
    "orgs.tier": ("Tier", "等级"),
    "orgs.rpm": ("Requests per minute", "每分钟请求数"),
    "orgs.concurrency": ("Concurrent requests", "并发请求数"),
    "orgs.tpm": ("Tokens per minute", "每分钟 tokens"),
    "orgs.tpd": ("Tokens per day", "每日 tokens"),
    "orgs.balances": ("Balances and tier", "余额与等级"),
    "orgs.id": ("Organization id: {id}", "组织 ID：{id}"),
    "orgs.none": ("There are no organizations yet.", "还没有任何组织。"),
    "orgs.none_next": (
        "Create one below, then invite its first owner from the management API.",
        "在下方创建一个组织，然后通过管理 API 邀请其第一位所有者。",
    ),
    "orgs.create": ("Create an organization", "创建组织"),
    "orgs.create_hint": (
        "A name people will recognise; it starts with no balance at tier 0.",
        "使用易于辨认的名称；新组织余额为零，等级为 0。",
    ),
    "orgs.create_button": ("Create organization", "创建组织"),
    "orgs.credit": ("Top up or grant a voucher", "充值或发放代金券"),
    "orgs.kind": ("What to add", "类型"),
    "orgs.kind_topup": (
        "Top-up: cash, counts towards the tier",
        "充值：现金，计入等级",
    ),
    "orgs.kind_voucher": (
        "Voucher: spent first, does not raise the tier",
        "代金券：优先消费，不提升等级",
    ),
    "orgs.reason_hint": ("e.g. invoice 2025-114", "例如：发票 2025-114"),
    "orgs.credit_button": ("Add to the balance", "加入余额"),
    "orgs.limits": ("Tier and limits", "等级与限制"),
    "orgs.limits_hint": (
        "Leave a field empty to follow the tier (the tier follows the top-ups). Saving "
        "replaces every override at once.",
        "留空表示跟随等级（等级由累计充值决定）。保存会一次性替换全部覆盖值。",
    ),
    "orgs.follows_topups": ("follows top-ups (now {tier})", "跟随充值（当前 {tier}）"),
    "orgs.tier_value": ("tier's: {value}", "等级默认：{value}"),
    "orgs.unlimited": ("unlimited", "不限"),
    "orgs.audit_link": ("This organization's audit log", "本组织的审计日志"),
    "orgs.done_created": ("Organization created.", "组织已创建。"),
    "orgs.done_topup": ("Topped up.", "已充值。"),
    "orgs.done_voucher": ("Voucher granted.", "代金券已发放。"),
    "orgs.done_limits": ("Tier and limits saved.", "等级与限制已保存。"),
    # Engines (operator)
    "engines.title": ("Engines", "推理引擎"),
    "engines.intro": (
        "What serves the models now: reload the page for fresh numbers.",
        "当前为模型提供服务的引擎：刷新页面可获取最新数据。",
    ),
    "engines.ready": ("ready", "就绪"),
    "engines.not_ready": ("not ready", "未就绪"),
    "engines.kind": ("Kind", "类型"),
    "engines.kind_upstream": ("upstream pool", "上游服务池"),
    "engines.kind_embedded": ("embedded", "内置"),
    "engines.active": ("Generating now", "正在生成"),
    "engines.queued": ("Queued", "排队中"),
    "engines.replicas": ("Replicas", "副本"),
    "engines.healthy_of": ("{healthy} of {total} healthy", "{healthy}/{total} 健康"),
    "engines.models": ("Models", "模型"),
    "engines.no_models": ("none", "无"),
    "engines.state": ("State", "状态"),
    "engines.healthy": ("healthy", "健康"),
    "engines.ejected": ("ejected (failing)", "已剔除（故障）"),
    "engines.in_flight": ("In flight", "处理中"),
    "engines.served": ("Served", "已处理"),
    "engines.last_error": ("Latest error", "最近错误"),
    "engines.errors": ("Recent errors", "最近错误"),
    "engines.no_errors": ("No errors.", "没有错误。"),
    "engines.details": ("Everything the engine reports", "引擎上报的全部信息"),
    "engines.none": ("No engine is configured.", "没有配置任何引擎。"),
    "engines.none_next": (
        "Configure one in the settings (engines.*), then restart moonbase.",
        "请在设置（engines.*）中配置引擎，然后重启 moonbase。",
    ),
    # Audit log (operator)
    "audit.title": ("Audit log", "审计日志"),
    "audit.org": ("Organization", "组织"),
    "audit.all_orgs": ("All organizations", "全部组织"),
    "audit.actor": ("Actor", "操作者"),
    "audit.action": ("Action", "操作"),
    "audit.filter": ("Filter", "筛选"),
    "audit.filter_hint": (
        "Actor: any part of it (an email, cli:, admin-api). Action: its beginning "
        "(account. for every balance and limit change, key. for keys).",
        "操作者：可输入其中任意部分（邮箱、cli:、admin-api）。操作：输入开头部分"
        "（account. 表示所有余额与限制变更，key. 表示密钥）。",
    ),
    "audit.when": ("When (UTC)", "时间（UTC）"),
    "audit.target": ("Target", "对象"),
    "audit.changes": ("Changes", "变更"),
    "audit.pages": ("Pages", "分页"),
    "audit.newest": ("Newest", "最新"),
    "audit.older": ("Older", "更早"),
    "audit.none": ("No changes match.", "没有匹配的变更。"),
    "audit.none_next": (
        "Clear the filters, or make a change (a top-up, a key): it shows here at once.",
        "清除筛选条件，或进行一次变更（充值、密钥）：变更会立即显示在这里。",
    ),
}
