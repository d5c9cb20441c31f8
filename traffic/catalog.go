package traffic

import (
	"strings"
)

const (
	site = "https://www.example.com"
	shop = "https://shop.example.com"
)

type page struct{ path, title, name string }

// pageTable holds every page of both sites; the lists below index it.
var (
	pageTable                                                      []page
	blogPages, docsPages, pricingPages, productPages, careersPages []uint8
	pageThankYou, pageDemo, pageContact, pageNewsletter, shopHome  uint8
	shopCategory0                                                  int
)

func addPage(path, title, name string) uint8 {
	pageTable = append(pageTable, page{path, title, name})
	return uint8(len(pageTable) - 1)
}

func addPages(list *[]uint8, name string, pages ...string) {
	for i := 0; i+1 < len(pages); i += 2 {
		*list = append(*list, addPage(pages[i], pages[i+1], name))
	}
}

func init() {
	addPages(&blogPages, "Blog",
		"/blog/pipeline-hygiene", "Pipeline hygiene in five steps",
		"/blog/intent-signals", "Intent signals that predict a deal",
		"/blog/release-notes-2026-01", "Release notes: January 2026",
		"/blog/lead-scoring-101", "Lead scoring 101",
		"/blog/kafka-for-marketers", "Kafka for marketers",
		"/blog/roadmap", "What we are building next",
		"/blog/customer-story-northwind", "How Northwind doubled pipeline",
		"/blog/gdpr-and-tracking", "GDPR and first-party tracking",
		"/blog/sales-marketing-alignment", "Sales and marketing, aligned",
		"/blog/real-time-alerts", "Why alerts must be real-time",
		"/blog/benchmarks", "Our benchmarks, explained",
		"/blog/hiring-engineers", "We are hiring engineers",
	)
	addPages(&docsPages, "Docs",
		"/docs/quickstart", "Quickstart",
		"/docs/concepts", "Concepts",
		"/docs/rules", "Writing rules",
		"/docs/rules/windows", "Windows",
		"/docs/rules/scoring", "Scoring",
		"/docs/rules/triggers", "Triggers",
		"/docs/sdk/javascript", "JavaScript SDK",
		"/docs/sdk/go", "Go SDK",
		"/docs/sdk/python", "Python SDK",
		"/docs/api/events", "Events API",
		"/docs/api/webhooks", "Webhooks",
		"/docs/integrations/salesforce", "Salesforce",
		"/docs/integrations/hubspot", "HubSpot",
		"/docs/deploy/kubernetes", "Deploy on Kubernetes",
		"/docs/security", "Security",
	)
	addPages(&pricingPages, "Pricing",
		"/pricing", "Pricing",
		"/pricing", "Pricing",
		"/pricing/teams", "Pricing: Teams",
		"/pricing/enterprise", "Pricing: Enterprise",
		"/pricing/compare", "Compare plans",
	)
	addPages(&productPages, "Product",
		"/", "Home",
		"/product", "Product",
		"/product/integrations", "Integrations",
		"/customers", "Customers",
		"/security", "Security and compliance",
	)
	addPages(&careersPages, "Careers",
		"/careers", "Careers",
		"/careers/openings/senior-go-engineer", "Senior Go Engineer",
		"/careers/openings/account-executive-emea", "Account Executive, EMEA",
		"/careers/openings/product-designer", "Product Designer",
		"/about", "About us",
	)
	pageThankYou = addPage("/thank-you", "Thank you", "Thank You")
	pageDemo = addPage("/demo", "Book a demo", "Demo")
	pageContact = addPage("/contact", "Contact sales", "Contact")
	pageNewsletter = addPage("/newsletter", "Newsletter", "Newsletter")
	formPages = [...]uint8{formNewsletter: pageNewsletter, formContact: pageContact, formDemo: pageDemo}

	shopHome = addPage("/", "Home", "Home")
	shopCategory0 = len(pageTable)
	for _, c := range categories {
		addPage("/c/"+c, strings.ToUpper(c[:1])+c[1:], "Category")
	}
	for _, n := range firstNames {
		firstNamesCap = append(firstNamesCap, strings.ToUpper(n[:1])+n[1:])
	}
	for _, n := range lastNames {
		lastNamesCap = append(lastNamesCap, strings.ToUpper(n[:1])+n[1:])
	}
	if len(pageTable) > 255 || len(products) > 255 {
		panic("traffic: page or product table too large for uint8 indices")
	}
}

const (
	formNewsletter = iota
	formContact
	formDemo
)

var (
	forms     = [...]string{formNewsletter: "newsletter", formContact: "contact", formDemo: "demo"}
	formPages [3]uint8
)

type company struct{ name, domain string }

var (
	firstNames                  = []string{"ada", "bo", "chen", "dana", "elif", "femi", "gita", "hugo", "ines", "jonas", "kai", "lena", "mateo", "noor", "olga", "priya", "quinn", "rosa", "sven", "tomas", "uma", "vik", "wen", "yara"}
	firstNamesCap, lastNamesCap []string // for traits; the lower-case forms make emails
	lastNames                   = []string{"rossi", "smith", "tanaka", "kowalski", "nguyen", "garcia", "muller", "okafor", "silva", "larsen", "haddad", "kim", "dubois", "novak", "patel", "ivanova"}
	companies                   = []company{
		{"Northwind", "northwind.io"}, {"Acme", "acme.com"}, {"Globex", "globex.co.jp"},
		{"Initech", "initech.com"}, {"Hooli", "hooli.com"}, {"Umbrella", "umbrella.de"},
		{"Stark Industries", "stark.com"}, {"Wayne Enterprises", "wayne.com"},
		{"Cyberdyne", "cyberdyne.ai"}, {"Soylent", "soylent.fr"}, {"Tyrell", "tyrell.sg"},
		{"Vandelay", "vandelay.com"}, {"Pied Piper", "piedpiper.com"}, {"Massive Dynamic", "massive.co.uk"},
		{"Aperture", "aperture.com.au"}, {"Oscorp", "oscorp.in"},
	}
	industries   = []string{"software", "fintech", "healthcare", "retail", "manufacturing", "education", "media", "logistics"}
	companySizes = []float64{5, 12, 40, 90, 150, 250, 600, 1200, 4000, 15000}
	titles       = []string{
		"VP Engineering", "Head of Data", "Director of Marketing", "CTO", "Founder",
		"Product Manager", "Software Engineer", "Staff Engineer", "Engineering Manager",
		"Marketing Operations Manager", "Data Analyst", "Account Executive", "CS Student", "Marketing Intern",
	}
	devTitles     = []uint8{6, 7, 8, 3, 1, 10}
	buyerTitles   = []uint8{0, 1, 2, 3, 4, 5, 9}
	regions       = []string{"emea", "apac", "amer"}
	regionWeights = []float64{0.35, 0.2, 0.45}
	tiers         = []string{"", "silver", "gold", "platinum"}
	tierWeights   = []float64{0.6, 0.25, 0.12, 0.03}

	userAgents = []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
	}
	campaigns = []struct{ source, medium, name, referrer string }{
		{"google", "cpc", "brand-search", "https://www.google.com/"},
		{"linkedin", "paid-social", "q1-abm", "https://www.linkedin.com/"},
		{"newsletter", "email", "monthly-digest", "https://mail.example.com/"},
		{"g2", "referral", "reviews", "https://www.g2.com/"},
	}
	guides   = []string{"buyers-guide", "roi-calculator", "state-of-pipelines-2026", "security-whitepaper"}
	webinars = []string{"scaling-pipelines", "real-time-scoring", "abm-playbook"}
	videos   = []struct {
		name    string
		minutes float64
	}{{"product-tour", 12}, {"pipelines-deep-dive", 35}, {"customer-story", 8}, {"rules-workshop", 55}}
	plans     = []string{"team", "business"}
	templates = []string{"blank", "web-tracking", "salesforce-sync", "hubspot-sync"}

	categories = []string{"shoes", "jackets", "bags", "shirts", "accessories", "socks", "watches"}
	products   = []product{
		{"p-100", "Trail Runner", 0, 89}, {"p-101", "City Sneaker", 0, 119}, {"p-102", "Leather Boot", 0, 189},
		{"p-200", "Rain Shell", 1, 149}, {"p-201", "Down Parka", 1, 279}, {"p-202", "Denim Jacket", 1, 99},
		{"p-300", "Weekender", 2, 219}, {"p-301", "Tote", 2, 59}, {"p-302", "Backpack", 2, 129},
		{"p-400", "Oxford Shirt", 3, 69}, {"p-401", "Linen Shirt", 3, 79}, {"p-402", "Flannel", 3, 59},
		{"p-500", "Belt", 4, 45}, {"p-501", "Wool Scarf", 4, 39}, {"p-502", "Sunglasses", 4, 129},
		{"p-600", "Merino Socks", 5, 19.5}, {"p-601", "Running Socks 3-pack", 5, 24},
		{"p-700", "Field Watch", 6, 249}, {"p-701", "Dive Watch", 6, 459},
	}
)

type product struct {
	id, name string
	category uint8
	price    float64
}
