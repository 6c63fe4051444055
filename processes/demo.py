"""A believable demo company (``crmflow demo``): people in their roles, a few hundred
customers, deals of all three kinds at every stage (won, lost, overdue among them) and
claims in every state.

Deals and claims are driven through the engine, step by step, on a clock that walks
through the last months, so their history, moves and deadlines are real.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from engine.models import Group, User
from engine.runtime import Engine
from processes.crm import ClaimDraft, Crm, PlannedActivity
from processes.customers import ContactDraft, CustomerDraft
from processes.errors import DuplicateCustomer
from processes.normalize import complete_inn
from processes.stages import STAGES
from processes.system import build_system
from processes.texts import ngettext

# The process library beside the package (the project is installed in place, pip install -e).
BPMN_LIBRARY = Path(__file__).resolve().parent.parent / "bpmn"


@dataclass(frozen=True)
class DemoUser:
    username: str
    name: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    manager: str | None
    password: str


# Listed top down: everyone's manager comes before them.
DEMO_USERS = (
    DemoUser("admin", "Алексей Админов", ("employee", "admin"), (), None, "admin-demo"),
    DemoUser("designer", "Дарья Схемова", ("employee", "designer"), (), None, "designer-demo"),
    DemoUser("director", "Наталья Директорова", ("employee", "manager"), ("heads",), None, "director-demo"),
    DemoUser("petrov", "Павел Петров", ("employee", "manager"), ("heads", "sales"), "director", "petrov-demo"),
    DemoUser("sidorova", "Светлана Сидорова", ("employee", "manager"), ("heads", "claims"), "director",
             "sidorova-demo"),
    DemoUser("ivanova", "Ирина Иванова", ("employee",), ("sales",), "petrov", "ivanova-demo"),
    DemoUser("smirnov", "Сергей Смирнов", ("employee",), ("sales",), "petrov", "smirnov-demo"),
    DemoUser("kuznetsova", "Ксения Кузнецова", ("employee",), ("sales",), "petrov", "kuznetsova-demo"),
    DemoUser("popov", "Олег Попов", ("employee",), ("sales",), "petrov", "popov-demo"),
    DemoUser("volkova", "Виктория Волкова", ("employee",), ("claims",), "sidorova", "volkova-demo"),
    DemoUser("fedorov", "Фёдор Фёдоров", ("employee",), ("claims",), "sidorova", "fedorov-demo"),
    DemoUser("morozov", "Максим Морозов", ("employee",), ("warehouse",), "sidorova", "morozov-demo"),
)
GROUPS = {  # name: (display name, head)
    "sales": ("Отдел продаж", "petrov"),
    "heads": ("Руководители отделов", "director"),
    "claims": ("Отдел претензий", "sidorova"),
    "warehouse": ("Склад", "sidorova"),
}
SALES = ("ivanova", "smirnov", "kuznetsova", "popov")
OFFICERS = ("volkova", "fedorov")

_ORG_WORDS_1 = ("Север", "Альфа", "Вектор", "Гранит", "Росток", "Меридиан", "Технопарк", "Волга", "Урал", "Сибирь",
                "Балтика", "Орион", "Стройкомплект", "Агро", "Пром", "Инвест", "Нева", "Энерго", "Мега", "Лидер")
_ORG_WORDS_2 = ("Снаб", "Сервис", "Трейд", "Строй", "Маш", "Логистик", "Холдинг", "Групп", "Плюс", "Систем",
                "Ресурс", "Технологии", "Продукт", "Металл", "Пак", "Хим", "Фарм", "Софт", "Авто", "Мебель")
_LEGAL = ("ООО", "ООО", "ООО", "АО", "ПАО", "ИП")
_SURNAMES = ("Соколов", "Лебедев", "Козлов", "Новиков", "Морозов", "Волков", "Алексеев", "Орлов", "Андреев",
             "Макаров", "Никитин", "Захаров", "Зайцев", "Павлов", "Семёнов", "Голубев", "Виноградов", "Богданов")
_FIRST = ("Александр", "Дмитрий", "Максим", "Андрей", "Алексей", "Иван", "Михаил", "Николай", "Евгений", "Артём")
_FIRST_F = ("Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Юлия", "Светлана", "Ирина", "Екатерина")
_PATRONYMIC = ("Александрович", "Сергеевич", "Викторович", "Петрович", "Иванович", "Андреевич")
_PATRONYMIC_F = ("Александровна", "Сергеевна", "Викторовна", "Петровна", "Ивановна", "Андреевна")
_CITIES = ("Москва", "Санкт-Петербург", "Екатеринбург", "Новосибирск", "Казань", "Нижний Новгород", "Самара")
_POSITIONS = (("Генеральный директор", "decision_maker"), ("Коммерческий директор", "decision_maker"),
              ("Главный инженер", "influencer"), ("Менеджер по закупкам", "user"), ("Секретарь", "gatekeeper"))
_CATEGORIES = ("Производство", "Розница", "Оптовая торговля", "Строительство", "Госсектор", "Услуги")
_DEAL_TITLES = ("Поставка упаковочной линии", "Оснащение склада", "Поставка комплектующих", "Сервисный контракт",
                "Модернизация оборудования", "Поставка расходных материалов", "Пилотный проект", "Годовой контракт")
_CLAIM_ESSENCES = (("damaged", "Повреждена упаковка при доставке"), ("delivery_delay", "Поставка задержана на неделю"),
                   ("wrong_goods", "Привезли не ту модель"), ("quality", "Брак в партии"),
                   ("billing", "Ошибка в счёте"), ("staff", "Некорректное поведение водителя"))


class DemoClock:
    """The demo walks through past months; each step happens at the moment set here."""

    def __init__(self, now: datetime):
        self.real_now = now
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def has_data(engine: Engine) -> str | None:
    """Why the database is not empty, or None."""
    with engine.reading() as session:
        users = session.scalar(select(func.count()).select_from(User))
        if users:
            demo = session.scalar(select(User.username).where(User.username == DEMO_USERS[0].username))
            return ("the database already has the demo data" if demo else f"the database already has {users} users")
    return None


def demo_logins(engine: Engine) -> list[DemoUser]:
    """The demo users who still sign in with their demo password (none once it is changed)."""
    with engine.reading() as session:
        hashes = dict(session.execute(select(User.username, User.password_hash).where(
            User.username.in_([user.username for user in DEMO_USERS]), User.active.is_(True))).all())
    return [user for user in DEMO_USERS
            if hashes.get(user.username) and check_password_hash(hashes[user.username], user.password)]


def wipe(engine: Engine) -> None:
    """Drop every table of the database: the demo starts from nothing."""
    metadata = MetaData()
    metadata.reflect(engine.db)
    metadata.drop_all(engine.db)


def load_demo(database_url: str, *, customers: int = 300, seed: int = 2026,
              echo: Callable[[str], None] = print, now: datetime | None = None) -> list[DemoUser]:
    clock = DemoClock(now or datetime.now(timezone.utc).replace(microsecond=0))
    system = build_system(database_url, clock=clock)
    engine, crm = system.engine, system.crm
    try:
        system.init_db()
        problem = has_data(engine)
        if problem:
            raise DemoRefused(problem)
        builder = _Builder(engine, crm, clock, random.Random(seed), echo)
        if not BPMN_LIBRARY.is_dir():
            raise DemoRefused(f"the process library {BPMN_LIBRARY} is missing")
        builder.people()
        engine.deploy([BPMN_LIBRARY], deployed_by="designer")
        builder.customers(customers)
        builder.deals()
        builder.claims()
        builder.interactions()
        clock.now = clock.real_now
        return list(DEMO_USERS)
    finally:
        engine.dispose()


class DemoRefused(Exception):
    pass


class _Builder:
    def __init__(self, engine: Engine, crm: Crm, clock: DemoClock, rnd: random.Random, echo):
        self.engine, self.crm, self.clock, self.rnd, self.echo = engine, crm, clock, rnd, echo
        self.customer_ids: list[int] = []
        self.counts: dict[str, int] = {}

    def at(self, moment: datetime) -> None:
        self.clock.now = moment

    def people(self) -> None:
        self.at(self.clock.real_now - timedelta(days=200))
        for name, (display, _) in GROUPS.items():
            self.engine.add_group(name, display)
        for user in DEMO_USERS:
            self.engine.add_user(user.username, user.name, roles=list(user.roles), groups=list(user.groups),
                                 manager=user.manager, email=f"{user.username}@demo.crmflow.example",
                                 password_hash=generate_password_hash(user.password, method="scrypt"))
        # Groups are created before their members; their heads are set once the users exist.
        with Session(self.engine.db) as session, session.begin():
            for name, (_, head) in GROUPS.items():
                if head:
                    group = session.scalar(select(Group).where(Group.name == name))
                    group.head_id = session.scalar(select(User.id).where(User.username == head))
        self.echo(f"{len(DEMO_USERS)} users in {len(GROUPS)} groups")

    def customers(self, count: int) -> None:
        rnd = self.rnd
        used_inn: set[str] = set()
        while len(self.customer_ids) < count:
            self.at(self.clock.real_now - timedelta(days=rnd.randint(100, 199), hours=rnd.randint(0, 8)))
            person = rnd.random() < 0.2
            prefix = "".join(str(rnd.randint(0, 9)) for _ in range(10 if person else 9))
            prefix = str(rnd.randint(1, 9)) + prefix[1:]
            inn = complete_inn(prefix)
            if inn in used_inn:
                continue
            used_inn.add(inn)
            phone = f"+7 9{rnd.randint(10, 99)} {rnd.randint(100, 999)}-{rnd.randint(10, 99)}-{rnd.randint(10, 99)}"
            city = rnd.choice(_CITIES)
            curator = rnd.choice(SALES)
            if person:
                female = rnd.random() < 0.5
                name = (f"{rnd.choice(_SURNAMES)}{'а' if female else ''} {rnd.choice(_FIRST_F if female else _FIRST)} "
                        f"{rnd.choice(_PATRONYMIC_F if female else _PATRONYMIC)}")
                draft = CustomerDraft(name=name, kind="person", inn=inn, phones=[phone], curator=curator,
                                      emails=[f"client{len(self.customer_ids) + 1}@mail.example"],
                                      status=rnd.choice(("potential", "existing")), importance=rnd.choice("ABC"),
                                      category="Частные клиенты", addresses=[{"kind": "postal", "text": f"г. {city}"}])
            else:
                number = len(self.customer_ids) + 1
                legal = rnd.choice(_LEGAL)
                if legal == "ИП":  # a sole trader trades under their own name
                    name = f"ИП {rnd.choice(_SURNAMES)} {rnd.choice(_FIRST)[0]}. {rnd.choice(_PATRONYMIC)[0]}. ({number})"
                else:
                    name = f"{legal} «{rnd.choice(_ORG_WORDS_1)}{rnd.choice(_ORG_WORDS_2).lower()}-{number}»"
                contacts = []
                for _ in range(rnd.randint(1, 3)):
                    position, role = rnd.choice(_POSITIONS)
                    female = rnd.random() < 0.5
                    contacts.append(ContactDraft(
                        name=f"{rnd.choice(_FIRST_F if female else _FIRST)} {rnd.choice(_SURNAMES)}{'а' if female else ''}",
                        position=position, decision_role=role,
                        phones=[f"+7 9{rnd.randint(10, 99)} {rnd.randint(1000000, 9999999)}"],
                        birthday=date(rnd.randint(1960, 1995), rnd.randint(1, 12), rnd.randint(1, 28))))
                draft = CustomerDraft(
                    name=name, kind="organisation", inn=inn, phones=[phone], emails=[f"info@company{number}.example"],
                    curator=curator, status=rnd.choice(("potential", "existing", "existing")),
                    relationship_stage=rnd.choice(("Первичный интерес", "Переговоры", "Постоянный клиент")),
                    importance=rnd.choice("ABC"), category=rnd.choice(_CATEGORIES),
                    partner_role=rnd.choices(("customer", "supplier", "competitor"), (90, 7, 3))[0],
                    addresses=[{"kind": "legal", "text": f"г. {city}, ул. Ленина, д. {rnd.randint(1, 150)}"}],
                    properties={"Источник": rnd.choice(("Выставка", "Сайт", "Рекомендация", "Холодный звонок"))},
                    contacts=contacts)
            try:
                self.customer_ids.append(self.crm.register_customer(draft, by=curator).customer.id)
            except DuplicateCustomer:
                continue
        self.echo(str(ngettext("%(num)d customer", "%(num)d customers", len(self.customer_ids))))

    # -- deals ---------------------------------------------------------------------------

    def deals(self) -> None:
        rnd = self.rnd
        plans = []
        for index, stage in enumerate(STAGES):  # in progress at every stage, on time and overdue
            plans += [("typical", index, "running", False), ("typical", index, "running", True),
                      ("manual", index, "running", rnd.random() < 0.4)]
        plans += [("typical", len(STAGES), "won", False)] * 8 + [("manual", len(STAGES), "won", False)] * 4
        plans += [("typical", rnd.randint(0, 7), "lost", False) for _ in range(8)]
        plans += [("manual", rnd.randint(0, 7), "lost", False) for _ in range(4)]
        for kind, reach, outcome, overdue in plans:
            self._deal(kind, reach, outcome, overdue)
        for _ in range(8):
            self._project_deal()
        self.echo(f"{len(plans) + 8} deals: " + ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items())))

    def _deal(self, kind: str, reach: int, outcome: str, overdue: bool) -> None:
        rnd = self.rnd
        customer_id = rnd.choice(self.customer_ids)
        customer = self.crm.customer(customer_id)
        curator = customer.curator.username
        # Walk back from the last step: overdue deals stopped moving weeks ago.
        last = self.clock.real_now - (timedelta(days=rnd.randint(15, 30)) if overdue else timedelta(hours=rnd.randint(2, 30)))
        steps = self._typical_steps(reach, outcome) if kind == "typical" else self._manual_steps(reach, outcome)
        # Each step takes about its stage's planned time, some a little longer.
        gaps = [timedelta(days=max(1, STAGES[min(i, 7)].planned_days + rnd.randint(-1, 2)), hours=rnd.randint(0, 6))
                for i in range(len(steps))]
        moment = last - sum(gaps, timedelta())
        self.at(moment)
        deal = self.crm.start_deal(kind, customer_id, curator, rnd.choice(_DEAL_TITLES), by=curator,
                                   amount=rnd.randrange(50_000, 5_000_000, 10_000))
        self.counts[f"{kind} {outcome}"] = self.counts.get(f"{kind} {outcome}", 0) + 1
        for gap, data in zip(gaps, steps):
            moment += gap
            self.at(moment)
            [item] = self.engine.work_items(instance_id=deal.instance_id)
            user = item.assignee.username if item.assignee else "petrov"
            self.engine.complete(item.id, data(item) if callable(data) else data, user)

    def _typical_steps(self, reach: int, outcome: str):
        rnd = self.rnd
        offer = lambda item: {"offer_amount": rnd.randrange(50_000, 5_000_000, 10_000), "discount": rnd.choice((0, 5, 10)),
                              "decision_date": (self.clock.now + timedelta(days=rnd.randint(3, 10))).date().isoformat(),
                              "outcome": "sent"}
        proceed = [
            {"contact_summary": "Договорились о встрече", "outcome": "continue"},
            {"needs": "Нужна поставка в течение квартала", "budget": rnd.randrange(100_000, 6_000_000, 50_000),
             "outcome": "continue"},
            {"price_type": rnd.choice(("retail", "wholesale", "dealer")),
             "payment_terms": rnd.choice(("prepayment", "deferred_30")), "delivery_terms": "carrier",
             "outcome": "classified"},
            offer,
            {"outcome": "agreed"},
            {"contract_number": f"Д-{rnd.randint(100, 999)}/26", "outcome": "signed"},
            {"paid_amount": rnd.randrange(50_000, 5_000_000, 10_000), "outcome": "paid"},
            {"shipment_document": f"ТН-{rnd.randint(1000, 9999)}", "outcome": "shipped"},
        ]
        if outcome == "lost":
            lose = (lambda item: {**offer(item), "outcome": "lost"}) if reach == 3 else {"outcome": "lost"}
            return proceed[:reach] + [lose, {"lost_reason": rnd.choice(("price", "competitor", "no_budget", "no_response")),
                                             "loss_comment": "Клиент выбрал другое предложение"}]
        return proceed[:reach]

    def _manual_steps(self, reach: int, outcome: str):
        rnd = self.rnd
        steps = []
        current = 0
        while current < reach:
            jump = 2 if rnd.random() < 0.25 and current + 2 <= reach else 1
            target = STAGES[current + jump].code if current + jump < len(STAGES) else "won"
            steps.append({"next_stage": target, "move_reason": "Клиент готов двигаться быстрее" if jump == 2 else None})
            current += jump
        if outcome == "lost":
            steps += [{"next_stage": "lost"}, {"lost_reason": rnd.choice(("price", "terms", "no_need"))}]
        return steps

    def _project_deal(self) -> None:
        rnd = self.rnd
        customer_id = rnd.choice(self.customer_ids)
        curator = self.crm.customer(customer_id).curator.username
        start = self.clock.real_now - timedelta(days=rnd.randint(20, 60))
        self.at(start)
        deal = self.crm.start_deal("project", customer_id, curator, "Долгосрочный проект: " + rnd.choice(_DEAL_TITLES).lower(),
                                   by=curator, amount=rnd.randrange(1_000_000, 20_000_000, 100_000))
        self.counts["project running"] = self.counts.get("project running", 0) + 1
        for number in range(rnd.randint(2, 4)):
            self.at(start + timedelta(days=number * 5))
            due = self.clock.now + timedelta(days=rnd.randint(3, 40))
            task = self.crm.add_project_task(deal.id, rnd.choice(("Согласовать ТЗ", "Провести демонстрацию",
                                                                  "Подготовить смету", "Встреча с ЛПР")),
                                             rnd.choice((curator, "petrov")), due, by=curator)
            if rnd.random() < 0.4:
                self.at(self.clock.now + timedelta(days=2))
                [item] = self.engine.work_items(instance_id=task.instance_id)
                self.engine.complete(item.id, {"result": "Сделано"}, item.assignee.username)

    # -- claims --------------------------------------------------------------------------

    def claims(self) -> None:
        states = ["triage"] * 4 + ["investigation"] * 5 + ["resolution"] * 3 + ["informing"] * 3 + ["closed"] * 10
        for state in states:
            self._claim(state)
        self.echo(f"{len(states)} claims: " + ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states)))

    def _claim(self, state: str) -> None:
        rnd = self.rnd
        # Claims still open were registered recently (a step a day); a few are late.
        steps = {"triage": 0, "investigation": 3, "resolution": 5, "informing": 6}.get(state)
        if steps is None:
            moment = self.clock.real_now - timedelta(days=rnd.randint(10, 60))
        else:
            late = timedelta(days=rnd.randint(3, 6)) if rnd.random() < 0.3 else timedelta(0)
            moment = self.clock.real_now - late - timedelta(hours=20 * steps + rnd.randint(2, 8))
        self.at(moment)
        reason, essence = rnd.choice(_CLAIM_ESSENCES)
        customer = self.crm.customer(rnd.choice(self.customer_ids))
        claim = self.crm.register_claim(ClaimDraft(
            customer_id=customer.id, complainant=customer.contacts[0].name if customer.contacts else customer.name,
            essence=essence, reason=reason, guilty_department=rnd.choice(("warehouse", "sales", None)),
            attachments=[("акт.txt", "text/plain", "Акт о расхождении".encode())] if rnd.random() < 0.3 else [],
        ), by=rnd.choice(OFFICERS))
        if state == "triage":
            return
        officer = rnd.choice(OFFICERS)

        def complete(data, hours=20):
            self.at(self.clock.now + timedelta(hours=hours))
            items = self.engine.work_items(instance_id=claim.instance_id)
            item = items[0]
            user = item.assignee.username if item.assignee else "sidorova"
            self.engine.complete(item.id, data, user)

        skip = state != "investigation" and rnd.random() < 0.3
        complete({"responsible_officer": officer, "skip_investigation": skip})
        if not skip:
            self.at(self.clock.now + timedelta(hours=20))
            [plan] = self.engine.work_items(instance_id=claim.instance_id)
            today = self.clock.now.date()
            self.crm.plan_investigation(plan.id, [
                PlannedActivity("morozov", today + timedelta(days=2), "Проверить складской журнал"),
                PlannedActivity(officer, today + timedelta(days=3), "Связаться с перевозчиком"),
                PlannedActivity(rnd.choice(SALES), today + timedelta(days=4), "Обсудить с клиентом компенсацию"),
            ], officer)
            if state == "investigation":
                complete({"activity_result": "Выявлено нарушение хранения"})
                return
            for _ in range(3):
                complete({"activity_result": "Проверено"}, hours=10)
        if state == "resolution":
            return
        complete({"resolution": rnd.choice(("satisfied", "partly_satisfied", "rejected")),
                  "outcome_text": "Компенсация 20% стоимости партии"})
        if state == "informing":
            return
        complete({"informed_by": rnd.choice(("call", "email", "letter")), "customer_reaction": "Принято"})

    def interactions(self) -> None:
        rnd = self.rnd
        count = 0
        kinds = ("meeting", "call_in", "call_out", "email")
        for customer_id in self.customer_ids[:150]:
            customer = self.crm.customer(customer_id)
            for _ in range(rnd.randint(1, 3)):
                planned = rnd.random() < 0.2
                at = self.clock.real_now + (timedelta(days=rnd.randint(1, 14)) if planned
                                            else -timedelta(days=rnd.randint(1, 90)))
                self.at(min(at, self.clock.real_now))
                self.crm.log_interaction(customer_id, rnd.choice(kinds), rnd.choice((
                    "Обсуждение условий поставки", "Уточнение потребностей", "Презентация продукции",
                    "Согласование сроков", "Звонок по счёту")), customer.curator.username,
                    status="planned" if planned else "done", at=at)
                count += 1
        self.echo(str(ngettext("%(num)d interaction", "%(num)d interactions", count)))
