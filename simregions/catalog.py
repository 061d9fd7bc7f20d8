"""Clinical content the simulated regions draw from: diagnoses, medicines and contacts.

Diagnoses carry ICD-10-SE codes, medicines ATC codes with a Swedish product text and dosage.
A diagnosis names the medicines, lab panels and Swedish note phrases that go with it, so a
synthetic record hangs together (a person with type 2 diabetes gets metformin, HbA1c
results and notes about diabetes follow-up).
"""

from __future__ import annotations

from dataclasses import dataclass

ICD10SE_SYSTEM = "http://hl7.org/fhir/sid/icd-10-se"
ATC_SYSTEM = "http://www.whocc.no/atc"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@dataclass(frozen=True)
class Medicine:
    """A prescribable product: ATC code, Swedish product text and usual dosage."""

    key: str
    atc: str
    atc_display: str
    product: str
    dosage: str
    long_term: bool


@dataclass(frozen=True)
class Diagnosis:
    """A diagnosis with what usually comes with it in a Swedish record."""

    key: str
    icd10: str
    display: str
    chronic: bool
    medicines: tuple[str, ...]
    panels: tuple[str, ...]
    unit_kind: str
    complaint: str
    assessment: str
    plan: str
    children: bool = False


MEDICINES: dict[str, Medicine] = {
    m.key: m
    for m in (
        Medicine("omeprazol", "A02BC01", "omeprazole",
                 "Omeprazol Actavis 20 mg enterokapsel, hård",
                 "1 kapsel 1 gång dagligen före frukost", True),
        Medicine("metformin", "A10BA02", "metformin",
                 "Metformin Teva 500 mg filmdragerad tablett",
                 "1 tablett 2 gånger dagligen i samband med måltid", True),
        Medicine("insulin_glargin", "A10AE04", "insulin glargine",
                 "Lantus 100 enheter/ml injektionsvätska, lösning i förfylld injektionspenna",
                 "18 enheter subkutant till kvällen", True),
        Medicine("atorvastatin", "C10AA05", "atorvastatin",
                 "Atorvastatin Krka 20 mg filmdragerad tablett", "1 tablett till kvällen", True),
        Medicine("simvastatin", "C10AA01", "simvastatin",
                 "Simvastatin Actavis 20 mg filmdragerad tablett", "1 tablett till kvällen",
                 True),
        Medicine("enalapril", "C09AA02", "enalapril", "Enalapril Sandoz 10 mg tablett",
                 "1 tablett 1 gång dagligen", True),
        Medicine("losartan", "C09CA01", "losartan",
                 "Losartan Krka 50 mg filmdragerad tablett", "1 tablett 1 gång dagligen", True),
        Medicine("amlodipin", "C08CA01", "amlodipine", "Amlodipin Teva 5 mg tablett",
                 "1 tablett 1 gång dagligen", True),
        Medicine("metoprolol", "C07AB02", "metoprolol", "Seloken ZOC 50 mg depottablett",
                 "1 tablett på morgonen", True),
        Medicine("furosemid", "C03CA01", "furosemide", "Furosemid Accord 40 mg tablett",
                 "1 tablett på morgonen", True),
        Medicine("apixaban", "B01AF02", "apixaban", "Eliquis 5 mg filmdragerad tablett",
                 "1 tablett 2 gånger dagligen", True),
        Medicine("warfarin", "B01AA03", "warfarin", "Waran 2,5 mg tablett",
                 "Enligt doseringsschema från AK-mottagningen", True),
        Medicine("asa", "B01AC06", "acetylsalicylic acid", "Trombyl 75 mg tablett",
                 "1 tablett 1 gång dagligen", True),
        Medicine("levotyroxin", "H03AA01", "levothyroxine sodium",
                 "Levaxin 100 mikrogram tablett", "1 tablett på morgonen på fastande mage",
                 True),
        Medicine("sertralin", "N06AB06", "sertraline",
                 "Sertralin Bluefish 50 mg filmdragerad tablett", "1 tablett på morgonen",
                 True),
        Medicine("escitalopram", "N06AB10", "escitalopram",
                 "Escitalopram Krka 10 mg filmdragerad tablett", "1 tablett 1 gång dagligen",
                 True),
        Medicine("zopiklon", "N05CF01", "zopiclone", "Zopiklon Mylan 5 mg filmdragerad tablett",
                 "1 tablett till natten vid behov", False),
        Medicine("paracetamol", "N02BE01", "paracetamol", "Alvedon 500 mg filmdragerad tablett",
                 "1-2 tabletter vid behov, högst 8 tabletter per dygn", False),
        Medicine("paracetamol_barn", "N02BE01", "paracetamol",
                 "Alvedon 24 mg/ml oral suspension", "Enligt vikt, högst 4 gånger per dygn",
                 False),
        Medicine("ibuprofen", "M01AE01", "ibuprofen", "Ipren 400 mg filmdragerad tablett",
                 "1 tablett vid behov, högst 3 per dygn", False),
        Medicine("salbutamol", "R03AC02", "salbutamol",
                 "Ventoline Evohaler 0,1 mg/dos inhalationsspray, suspension",
                 "1-2 doser vid behov", True),
        Medicine("budesonid_formoterol", "R03AK07", "formoterol and budesonide",
                 "Symbicort Turbuhaler 160 mikrogram/4,5 mikrogram/inhalation",
                 "1 inhalation morgon och kväll", True),
        Medicine("tiotropium", "R03BB04", "tiotropium bromide",
                 "Spiriva Respimat 2,5 mikrogram/dos inhalationsvätska",
                 "2 inhalationer 1 gång dagligen", True),
        Medicine("fenoximetylpenicillin", "J01CE02", "phenoxymethylpenicillin",
                 "Kåvepenin 1 g filmdragerad tablett",
                 "1 tablett 3 gånger dagligen i 10 dagar", False),
        Medicine("fenoximetylpenicillin_barn", "J01CE02", "phenoxymethylpenicillin",
                 "Kåvepenin 50 mg/ml granulat till oral suspension",
                 "Enligt vikt, 3 gånger dagligen i 5 dagar", False),
        Medicine("nitrofurantoin", "J01XE01", "nitrofurantoin", "Furadantin 50 mg tablett",
                 "1 tablett 3 gånger dagligen i 5 dagar", False),
        Medicine("desloratadin", "R06AX27", "desloratadine",
                 "Desloratadine Teva 5 mg filmdragerad tablett",
                 "1 tablett 1 gång dagligen under pollensäsong", False),
        Medicine("hydrokortison_kram", "D07AA02", "hydrocortisone",
                 "Hydrokortison Orifarm 1 % kräm", "Smörjes tunt 1-2 gånger dagligen", False),
        Medicine("cyanokobalamin", "B03BA01", "cyanocobalamin", "Behepan 1 mg tablett",
                 "1 tablett 1 gång dagligen", True),
        Medicine("jarn", "B03AA07", "ferrous sulfate", "Duroferon 100 mg Fe2+ depottablett",
                 "1 tablett 1 gång dagligen", False),
        Medicine("kalcium_d", "A12AX", "calcium, combinations with vitamin D and/or other drugs",
                 "Calcichew-D3 500 mg/400 IE tuggtablett", "1 tablett 2 gånger dagligen", True),
        Medicine("sumatriptan", "N02CC01", "sumatriptan", "Sumatriptan Bluefish 50 mg tablett",
                 "1 tablett vid migränanfall, högst 6 per dygn", False),
        Medicine("alendronat", "M05BA04", "alendronic acid", "Alendronat Bluefish 70 mg tablett",
                 "1 tablett 1 gång i veckan på fastande mage", True),
    )
}  # fmt: skip

DIAGNOSES: dict[str, Diagnosis] = {
    d.key: d
    for d in (
        Diagnosis("hypertoni", "I10", "Essentiell hypertoni", True,
                  ("enalapril", "amlodipin", "losartan"), ("elstatus", "lipider"),
                  "primary-care",
                  "Kontroll av blodtrycket. Mår bra, inga biverkningar av medicinen.",
                  "Välbehandlad hypertoni, BT under målvärde.",
                  "Fortsatt samma medicinering. Ny kontroll om ett år med provtagning."),
        Diagnosis("diabetes2", "E11.9", "Typ 2-diabetes utan komplikationer", True,
                  ("metformin", "atorvastatin"), ("diabetes", "lipider", "njure"),
                  "primary-care",
                  "Årskontroll diabetes. Följer kostråd, promenerar dagligen.",
                  "Typ 2-diabetes med acceptabel metabol kontroll.",
                  "Fortsatt metformin. Fotundersökning och ögonbottenfoto bokas."),
        Diagnosis("diabetes1", "E10.9", "Typ 1-diabetes utan komplikationer", True,
                  ("insulin_glargin",), ("diabetes", "njure"), "hospital-clinic",
                  "Besök på diabetesmottagningen. Enstaka nattliga hypoglykemier.",
                  "Typ 1-diabetes, något svängande glukosnivåer.",
                  "Justerar basinsulindosen. Återbesök hos diabetessjuksköterska."),
        Diagnosis("forstadsflimmer", "I48.9", "Förmaksflimmer och förmaksfladder, ospecificerat",
                  True, ("apixaban", "metoprolol"), ("blodstatus", "elstatus", "hjarta"),
                  "hospital-clinic",
                  "Uppföljning av förmaksflimmer. Ibland hjärtklappning vid ansträngning.",
                  "Permanent förmaksflimmer, frekvensreglerat. Antikoagulantia utan blödningar.",
                  "Fortsatt Eliquis och metoprolol. Kontroll av njurfunktion om sex månader."),
        Diagnosis("hjartsvikt", "I50.9", "Hjärtsvikt, ospecificerad", True,
                  ("furosemid", "enalapril", "metoprolol"), ("elstatus", "hjarta"),
                  "hospital-clinic",
                  "Tilltagande andfåddhet och bensvullnad senaste veckorna.",
                  "Hjärtsvikt i lätt försämring, viktuppgång två kilo.",
                  "Ökar furosemid tillfälligt. Daglig vägning, ny kontroll om två veckor."),
        Diagnosis("njursvikt", "N18.3", "Kronisk njursjukdom, stadium 3", True, (),
                  ("njure", "elstatus", "blodstatus"), "hospital-clinic",
                  "Kontroll av njurfunktionen. Inga nya symtom.",
                  "Stabil kronisk njursjukdom stadium 3.",
                  "Undvika NSAID. Ny provtagning om tre månader."),
        Diagnosis("hypotyreos", "E03.9", "Hypotyreos, ospecificerad", True, ("levotyroxin",),
                  ("tyreoidea",), "primary-care",
                  "Kontroll av sköldkörteln. Mindre trött sedan dosökningen.",
                  "Hypotyreos, adekvat substituerad.",
                  "Oförändrad dos Levaxin. TSH om ett år."),
        Diagnosis("hyperkolesterolemi", "E78.0", "Ren hyperkolesterolemi", True,
                  ("atorvastatin",), ("lipider", "lever"), "primary-care",
                  "Kontroll av blodfetter efter insättning av statin.",
                  "LDL sjunkit tydligt, leverprover normala.",
                  "Fortsatt atorvastatin. Blodfetter om ett år."),
        Diagnosis("astma", "J45.9", "Astma, ospecificerad", True,
                  ("budesonid_formoterol", "salbutamol"), ("infektion",), "primary-care",
                  "Astmakontroll. Behöver sällan vid behovs-medicinen.",
                  "Välkontrollerad astma.",
                  "Fortsatt Symbicort. Spirometri vid nästa besök."),
        Diagnosis("kol", "J44.9", "Kroniskt obstruktiv lungsjukdom, ospecificerad", True,
                  ("tiotropium", "salbutamol"), ("blodstatus", "infektion"), "primary-care",
                  "Kontroll av KOL. Rökstopp sedan två år. Hosta på morgnarna.",
                  "KOL utan tecken på exacerbation.",
                  "Fortsatt Spiriva. Influensa- och pneumokockvaccination rekommenderas."),
        Diagnosis("depression", "F32.9", "Depressiv episod, ospecificerad", True,
                  ("sertralin", "zopiklon"), ("tyreoidea", "blodstatus"), "primary-care",
                  "Nedstämdhet och sömnsvårigheter sedan några månader.",
                  "Medelsvår depressiv episod. Ingen suicidrisk framkommer.",
                  "Insätter sertralin. Remiss till samtalsbehandling. Återbesök om fyra veckor."),
        Diagnosis("angest", "F41.1", "Generaliserat ångestsyndrom", True, ("escitalopram",),
                  (), "primary-care",
                  "Ihållande oro och spänningar som påverkar arbetet.",
                  "Generaliserat ångestsyndrom.",
                  "Insätter escitalopram. KBT via internet erbjuds."),
        Diagnosis("reflux", "K21.9", "Gastroesofageal refluxsjukdom utan esofagit", True,
                  ("omeprazol",), ("blodstatus",), "primary-care",
                  "Halsbränna nästan dagligen, värre efter måltid.",
                  "Refluxbesvär utan alarmsymtom.",
                  "Omeprazol i fyra veckor, därefter vid behov. Levnadsråd givna."),
        Diagnosis("gonartros", "M17.9", "Gonartros, ospecificerad", True,
                  ("paracetamol",), (), "primary-care",
                  "Värk i höger knä vid promenader, stelhet på morgonen.",
                  "Knäledsartros med belastningssmärta.",
                  "Artrosskola via fysioterapeut. Paracetamol vid behov."),
        Diagnosis("osteoporos", "M81.9", "Osteoporos utan patologisk fraktur, ospecificerad",
                  True, ("alendronat", "kalcium_d"), ("kalcium", "vitaminer"), "primary-care",
                  "Uppföljning efter bentäthetsmätning.",
                  "Osteoporos, ingen tidigare fraktur.",
                  "Insätter alendronat och kalcium med D-vitamin."),
        Diagnosis("b12brist", "D51.9", "Vitamin B12-bristanemi, ospecificerad", True,
                  ("cyanokobalamin",), ("blodstatus", "vitaminer"), "primary-care",
                  "Trötthet och stickningar i fötterna.",
                  "B12-brist med lätt anemi.",
                  "Behepan dagligen. Kontroll av B12 och Hb om tre månader."),
        Diagnosis("jarnbrist", "D50.9", "Järnbristanemi, ospecificerad", False, ("jarn",),
                  ("jarnstatus", "blodstatus"), "primary-care",
                  "Trötthet och andfåddhet vid trappgång.",
                  "Järnbristanemi, sannolikt nutritionell.",
                  "Järntabletter i tre månader, därefter ny kontroll."),
        Diagnosis("migran", "G43.9", "Migrän, ospecificerad", True, ("sumatriptan",), (),
                  "primary-care",
                  "Återkommande halvsidig huvudvärk med illamående, två gånger i månaden.",
                  "Migrän utan aura.", "Sumatriptan vid anfall. Huvudvärksdagbok."),
        Diagnosis("prostata", "N40", "Prostatahyperplasi", True, (), ("psa", "njure"),
                  "primary-care",
                  "Svag stråle och täta nattliga vattenkastningar.",
                  "Benign prostataförstoring, PSA inom referensområdet.",
                  "Avvaktar. Ny kontroll om ett år."),
        Diagnosis("uvi", "N39.0", "Urinvägsinfektion utan angiven lokalisation", False,
                  ("nitrofurantoin",), ("infektion",), "primary-care",
                  "Sveda vid vattenkastning och täta trängningar sedan två dagar.",
                  "Okomplicerad nedre urinvägsinfektion.",
                  "Furadantin i fem dagar. Hör av sig vid feber."),
        Diagnosis("tonsillit", "J03.0", "Streptokocktonsillit", False,
                  ("fenoximetylpenicillin",), ("infektion",), "primary-care",
                  "Halsont och feber sedan tre dagar, ingen hosta.",
                  "Streptokocktonsillit, positivt snabbtest.",
                  "Kåvepenin i tio dagar.", children=True),
        Diagnosis("ovre_luftvag", "J06.9", "Akut övre luftvägsinfektion, ospecificerad", False,
                  ("paracetamol",), ("infektion",), "primary-care",
                  "Snuva, hosta och lätt feber sedan fyra dagar.",
                  "Viral övre luftvägsinfektion.",
                  "Egenvårdsråd. Ingen antibiotika.", children=True),
        Diagnosis("otit", "H66.9", "Mediaotit, ospecificerad", False,
                  ("fenoximetylpenicillin_barn", "paracetamol_barn"), (), "paediatric",
                  "Öronvärk och feber sedan ett dygn.",
                  "Akut mediaotit vänster sida.",
                  "Kåvepenin oral suspension i fem dagar. Smärtlindring.", children=True),
        Diagnosis("eksem", "L20.9", "Atopiskt eksem, ospecificerat", True,
                  ("hydrokortison_kram",), (), "paediatric",
                  "Torr och kliande hud i armvecken och knävecken.",
                  "Atopiskt eksem, måttlig utbredning.",
                  "Mjukgörande kräm dagligen, hydrokortison vid skov.", children=True),
        Diagnosis("pollen", "J30.1", "Allergisk rinit orsakad av pollen", True,
                  ("desloratadin",), (), "primary-care",
                  "Nästäppa, nysningar och kliande ögon varje vår.",
                  "Björkpollenallergi.", "Desloratadin under säsong.", children=True),
        Diagnosis("brostsmarta", "R07.4", "Bröstsmärtor, ospecificerade", False, (),
                  ("hjarta", "blodstatus", "elstatus"), "emergency",
                  "Tryck över bröstet sedan i morse, ingen utstrålning.",
                  "Bröstsmärta utan hållpunkt för akut koronart syndrom, troponin normalt.",
                  "Hem. Kontakt med vårdcentralen för uppföljning."),
        Diagnosis("radiusfraktur", "S52.5", "Fraktur på nedre delen av radius", False,
                  ("paracetamol",), (), "emergency",
                  "Föll på isen och tog emot sig med handen.",
                  "Distal radiusfraktur utan felställning.",
                  "Gipsskena i fyra veckor. Röntgenkontroll om en vecka.", children=True),
    )
}  # fmt: skip


@dataclass(frozen=True)
class ContactType:
    """A kind of care contact: encounter class, Swedish name and the note it produces."""

    key: str
    name: str
    act_code: str
    act_display: str
    note_title: str
    note_loinc: str
    note_loinc_display: str
    minutes: int


CONTACT_TYPES: dict[str, ContactType] = {
    c.key: c
    for c in (
        ContactType("lakarbesok", "Läkarbesök", "AMB", "ambulatory", "Mottagningsanteckning",
                    "11506-3", "Progress note", 30),
        ContactType("sskbesok", "Sjuksköterskebesök", "AMB", "ambulatory",
                    "Sjuksköterskeanteckning", "34746-8", "Nurse Note", 20),
        ContactType("telefon", "Telefonkontakt", "VR", "virtual", "Telefonanteckning",
                    "34109-9", "Note", 10),
        ContactType("video", "Videobesök", "VR", "virtual", "Anteckning videobesök",
                    "11506-3", "Progress note", 20),
        ContactType("akut", "Akutbesök", "EMER", "emergency", "Akutanteckning",
                    "34111-5", "Emergency department Note", 240),
        ContactType("slutenvard", "Slutenvårdstillfälle", "IMP", "inpatient encounter",
                    "Epikris", "18842-5", "Discharge summary", 3 * 24 * 60),
    )
}  # fmt: skip

#: Swedish status phrases a note can carry, picked per contact.
STATUS_PHRASES: tuple[str, ...] = (
    "Allmäntillstånd: gott. Cor: regelbunden rytm, inga blåsljud. Pulm: normala andningsljud.",
    "Opåverkad. Cor: oregelbunden rytm, frekvens 78. Pulm: lätta basala rassel bilateralt.",
    "Gott och opåverkat allmäntillstånd. Afebril. Buk: mjuk och oöm.",
    "Lätt trött men opåverkad. Inga ödem. Neurologiskt utan anmärkning.",
)
