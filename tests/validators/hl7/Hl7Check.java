import java.io.FileInputStream;
import java.io.InputStream;
import java.util.List;
import org.hl7.fhir.r5.elementmodel.Manager.FhirFormat;
import org.hl7.fhir.r5.model.OperationOutcome;
import org.hl7.fhir.r5.model.OperationOutcome.OperationOutcomeIssueComponent;
import org.hl7.fhir.validation.ValidationEngine;

/**
 * Validates FHIR R4 JSON files with the HL7 validator engine (org.hl7.fhir.validation), offline.
 *
 * <p>Arguments: {@code IG_FOLDER... -- FILE...}. The R4 core package comes from the package
 * cache under {@code user.home}; no terminology server is used (the CLI's {@code -tx n/a}).
 * Prints one line per file: {@code FILE<TAB>severity|expression|message<TAB>...}.
 */
public final class Hl7Check {
  private Hl7Check() {}

  public static void main(String[] args) throws Exception {
    ValidationEngine engine = new ValidationEngine.ValidationEngineBuilder()
        .withVersion("4.0.1")
        .withNoTerminologyServer()
        .withCanRunWithoutTerminologyServer(true)
        .fromSource("hl7.fhir.r4.core#4.0.1");
    int split = List.of(args).indexOf("--");
    for (int i = 0; i < split; i++) {
      engine.getIgLoader().loadIg(engine.getIgs(), engine.getBinaries(), args[i], false);
    }
    for (int i = split + 1; i < args.length; i++) {
      StringBuilder line = new StringBuilder(args[i]);
      try (InputStream in = new FileInputStream(args[i])) {
        OperationOutcome outcome = engine.validate(FhirFormat.JSON, in, List.of());
        for (OperationOutcomeIssueComponent issue : outcome.getIssue()) {
          String where = issue.getExpression().isEmpty()
              ? "" : issue.getExpression().get(0).getValue();
          line.append('\t').append(issue.getSeverity().toCode()).append('|').append(where)
              .append('|').append(issue.getDetails().getText().replace('\t', ' ')
                  .replace('\n', ' '));
        }
      }
      System.out.println(line);
    }
  }
}
