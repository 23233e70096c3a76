/**
 * "Ignore the previous instructions" in other languages than English: one regular expression
 * per language, read on the `plain` copy (NFKC, lowercased, invisible characters removed,
 * scripts and accents kept). Each pairs a verb of dismissal with what is dismissed, a bounded
 * gap apart (bounded, so matching stays linear). They add up to one signal in the detector,
 * `instruction_override`, with the English phrase's weight. The list is a floor, not a
 * translation service: it covers the common wordings; paraphrase is the model's job.
 */
export const OVERRIDE_PHRASES: Readonly<Record<string, RegExp>> = {
  de: /(ignorier|vergiss|vergessen sie|missachte|übergeh).{0,40}(anweisung|instruktion|regeln|vorgaben|befehle|alles)/,
  es: /(ignora|olvida|omite|descarta|haz caso omiso).{0,40}(instrucciones|indicaciones|reglas|[óo]rdenes)/,
  fr: /(ignore[rz]?|oublie[rz]?|n[eé]glige[rz]?).{0,40}(instructions|consignes|r[eè]gles|directives)/,
  it: /(ignora|dimentica|trascura).{0,40}(istruzioni|regole|indicazioni|direttive)/,
  pt: /(ignore|ignora|esque[çc]a|desconsidere|descarte).{0,40}(instru[çc][õo]es|regras|orienta[çc][õo]es|diretrizes)/,
  nl: /(negeer|vergeet|veronachtzaam).{0,40}(instructies|aanwijzingen|regels|opdrachten)/,
  sv: /(ignorera|glöm|strunta i).{0,40}(instruktioner|anvisningar|regler|direktiv)/,
  da_no:
    /(ignorer|glem).{0,40}(instruktioner|instruksjoner|instruksene|instruktionerne|regler|reglene)/,
  pl: /(zignoruj|ignoruj|zapomnij|pomiń).{0,40}(instrukcj|poleceni|zasad|reguł|wytyczn)/,
  ru: /(игнорируй|проигнорируй|забудь|игнорировать|не обращай внимания на).{0,40}(инструкци|указани|правил|команд)/,
  uk: /(ігноруй|проігноруй|забудь|не зважай на).{0,40}(інструкці|вказівк|правил|команд)/,
  tr: /(talimat|komut|kural|yönerge|direktif).{0,40}(yok say|görmezden gel|unut|göz ardı et|dikkate alma)/,
  el: /(αγν[οό]ησε|ξ[εέ]χασε|παρ[αά]βλεψε).{0,40}(οδηγ[ιί]ες|εντολ[εέ]ς|καν[οό]νες)/,
  ar: /(تجاهل|انس|أهمل|اهمل|لا تلتزم ب).{0,40}(التعليمات|الأوامر|الإرشادات|القواعد|تعليمات)/,
  fa: /(دستورالعمل|دستورات|قوانین|قواعد).{0,40}(نادیده|فراموش)/,
  he: /(התעלם|שכח|תתעלם|תשכח).{0,40}(הוראות|ההוראות|הנחיות|ההנחיות|כללים|הכללים)/,
  hi: /(निर्देश|आदेश|नियम).{0,40}(अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल जा|उपेक्षा)/,
  zh: /(忽略|无视|無視|忘记|忘記|忘掉|不要理会|不要理會).{0,20}(指令|指示|说明|說明|规则|規則|提示)/,
  ja: /(指示|命令|ルール|プロンプト|指令).{0,20}(無視|忘れ)/,
  ko: /(지시|지침|명령|규칙|프롬프트).{0,20}(무시|잊어)/,
  vi: /(bỏ qua|phớt lờ|quên|lờ đi).{0,40}(hướng dẫn|chỉ dẫn|chỉ thị|quy tắc|mệnh lệnh)/,
  id_ms: /(abaikan|lupakan|hiraukan).{0,40}(instruksi|arahan|perintah|aturan|petunjuk)/,
}
